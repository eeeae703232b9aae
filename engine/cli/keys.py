"""``ceustream keys DIR``: CURVE key pairs for the engine and its clients (off loopback)."""

from __future__ import annotations

from . import common


def add_parser(sub) -> None:
    p = common.command(sub, "keys", "create CURVE keys for off-loopback use")
    p.add_argument("folder", help="where to write server and client key pairs")


def run(args) -> int:
    from ceustream.engine.wire.security import create_keys

    k = create_keys(args.folder)
    print(f"server secret key: {k['server_secret']} (engine: zmq.curve_secret_key)")
    print(f"authorised clients: {k['authorized_dir']} (engine: zmq.curve_authorized_dir)")
    print(f"client keys: {k['client_secret']} (overlay: --keys {args.folder})")
    return 0
