"""Loopback by default; off loopback only with CURVE keys, so an unauthorised peer gets
nothing (ZAP rejects it before any message is sent)."""

from __future__ import annotations

import logging
import ipaddress
import os
import socket as pysocket
from pathlib import Path
from urllib.parse import urlparse

import zmq

from ceustream.engine.core.errors import UsageError

log = logging.getLogger(__name__)


def is_loopback(endpoint: str) -> bool:
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    u = urlparse(endpoint)
    if u.scheme != "tcp" or not u.hostname:
        return False
    host = u.hostname
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(pysocket.gethostbyname(host)).is_loopback
        except OSError:
            return False


class CurveServer:
    """Holds the authenticator thread for a context; one per process is enough."""

    def __init__(self, ctx: zmq.Context, secret_key_file: str, authorized_dir: str):
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        if not Path(secret_key_file).is_file():
            raise UsageError(f"zmq.curve_secret_key {secret_key_file}: file not found")
        if not Path(authorized_dir).is_dir():
            raise UsageError(f"zmq.curve_authorized_dir {authorized_dir}: not a folder")
        try:
            self.public, self.secret = zmq.auth.load_certificate(secret_key_file)
        except (ValueError, OSError) as e:
            raise UsageError(f"zmq.curve_secret_key {secret_key_file}: {e}") from None
        if self.secret is None:
            raise UsageError(f"zmq.curve_secret_key {secret_key_file}: holds no secret key")
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(authorized_dir))
        log.info("CURVE on: clients authorised by the public keys in %s", authorized_dir)

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        self.auth.stop()


def bind(sock: zmq.Socket, endpoint: str, cfg: dict, curve: "CurveServer | None",
         what: str) -> None:
    """Binds ``sock``; off loopback requires ``curve`` (built from the config). Configured
    keys are used on loopback too."""
    if curve is not None:
        curve.apply(sock)
    elif not is_loopback(endpoint):
        raise UsageError(
            f"{what} endpoint {endpoint} is not loopback: set zmq.curve_secret_key and "
            "zmq.curve_authorized_dir (create keys with `ceustream keys DIR`)")
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        raise UsageError(f"{what} endpoint {endpoint}: cannot bind ({e})") from None


def curve_for(ctx: zmq.Context, cfg: dict, endpoints: list[str]) -> "CurveServer | None":
    z = cfg["zmq"]
    if all(is_loopback(e) for e in endpoints) and not z["curve_secret_key"]:
        return None
    if not z["curve_secret_key"] or not z["curve_authorized_dir"]:
        bad = [e for e in endpoints if not is_loopback(e)]
        raise UsageError(
            f"endpoint {bad[0] if bad else endpoints[0]} is not loopback: set "
            "zmq.curve_secret_key and zmq.curve_authorized_dir (create keys with "
            "`ceustream keys DIR`)")
    return CurveServer(ctx, z["curve_secret_key"], z["curve_authorized_dir"])


def create_keys(folder: str) -> dict[str, str]:
    """Server and client key pairs in zmq.auth's format; the client's public key is also
    put in ``authorized/``."""
    import shutil

    import zmq.auth

    base = Path(folder)
    (base / "authorized").mkdir(parents=True, exist_ok=True)
    server_pub, server_sec = zmq.auth.create_certificates(str(base), "server")
    client_pub, client_sec = zmq.auth.create_certificates(str(base), "client")
    shutil.copy(client_pub, base / "authorized" / "client.key")
    for p in (server_sec, client_sec):
        os.chmod(p, 0o600)
    log.info("CURVE keys written to %s (secret keys mode 0600)", base)
    return {"server_secret": server_sec, "server_public": server_pub,
            "client_secret": client_sec, "client_public": client_pub,
            "authorized_dir": str(base / "authorized")}
