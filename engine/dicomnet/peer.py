"""PACS addresses and credentials.

- ``dicomweb+http://host:port/dicom-web`` (or ``dicomweb+https://``): a DICOMweb service root.
- ``dimse://AET@host:port``: a DIMSE peer (its AE title, host, port); ours is configurable;
  ``dimse+tls://AET@host:port``: the same over TLS (PS3.15 B.1).
  Cines come by C-GET; ``dimse://AET@host:port?retrieve=move&move-port=N`` asks for C-MOVE
  instead: the peer sends them to our AE title (``--our-aet``) at a storage SCP we open on
  port N for the retrieve (the peer must list our AE title, host and port N as a modality;
  it must call from its own AE title).

TLS material from the environment: ``CEUSTREAM_PACS_CA`` (the CA bundle the peer's certificate
is verified against; default: the system's), ``CEUSTREAM_PACS_CERT`` + ``CEUSTREAM_PACS_KEY``
(our certificate, for a peer that asks for one).

Credentials never come from the command line (a URL with ``user:password@`` is refused): from
the environment, ``CEUSTREAM_PACS_USER`` + ``CEUSTREAM_PACS_PASSWORD`` or
``CEUSTREAM_PACS_TOKEN`` (a bearer token), or from a file named by ``CEUSTREAM_PACS_CREDENTIALS``
whose first line is ``user:password`` or ``Bearer TOKEN``. ``Peer.describe`` and every
message name the peer without them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ceustream.engine.core.errors import InputError, UsageError

log = logging.getLogger(__name__)

AET_RE = re.compile(r"^[ -~]{1,16}$")
SCHEMES = ("dicomweb+http://", "dicomweb+https://", "dimse://", "dimse+tls://")


def is_pacs_address(text: str) -> bool:
    return str(text).lower().startswith(SCHEMES)


def check_aet(aet: str, what: str = "AE title") -> str:
    """1-16 printable ASCII characters, not all spaces, no backslash (PS3.5 AE VR)."""
    if not AET_RE.match(aet or "") or not aet.strip() or "\\" in aet:
        raise UsageError(f"{what} {aet!r}: 1-16 printable ASCII characters, no backslash")
    return aet.strip()


@dataclass(frozen=True)
class Credentials:
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return bool(self.user or self.token)


@dataclass(frozen=True)
class Peer:
    kind: str          # dicomweb | dimse
    host: str
    port: int
    url: str = ""      # dicomweb: http(s)://host:port/path
    aet: str = ""      # dimse: the peer's AE title
    our_aet: str = "CEUSTREAM"
    credentials: Credentials = field(default_factory=Credentials, repr=False)
    tls: bool = False
    ca: str | None = None
    cert: tuple[str, str] | None = None
    retrieve: str = "get"          # dimse: get | move
    move_port: int | None = None   # dimse C-MOVE: the port of our storage SCP

    def ssl_context(self):
        """The client TLS context: the peer verified (``ca`` or the system's), our
        certificate offered when given."""
        import ssl

        try:
            ctx = ssl.create_default_context(cafile=self.ca)
            if self.cert:
                ctx.load_cert_chain(*self.cert)
        except (OSError, ssl.SSLError) as e:
            raise InputError(f"{self.describe()}: TLS material unreadable "
                             f"({getattr(e, 'strerror', None) or e})") from None
        return ctx

    def describe(self) -> str:
        """The peer as a message may name it (no credentials)."""
        if self.kind == "dicomweb":
            return f"dicomweb+{self.url}"
        move = f"?retrieve=move&move-port={self.move_port}" if self.retrieve == "move" else ""
        return f"dimse{'+tls' if self.tls else ''}://{self.aet}@{self.host}:{self.port}{move}"


def read_credentials_file(path: str, name: str = "CEUSTREAM_PACS_CREDENTIALS") -> Credentials:
    """A credentials file: its first line ``user:password`` or ``Bearer TOKEN``."""
    p = Path(path)
    try:
        line = p.read_text(encoding="utf-8").splitlines()[0].strip() if p.stat().st_size else ""
    except (OSError, UnicodeDecodeError, IndexError) as e:
        raise InputError(f"{name} {p}: unreadable "
                         f"({getattr(e, 'strerror', None) or type(e).__name__})") from None
    if line.lower().startswith("bearer "):
        return Credentials(token=line[7:].strip())
    user, sep, pw = line.partition(":")
    if not sep or not user:
        raise InputError(f"{name} {p}: the first line must be 'user:password' or "
                         "'Bearer TOKEN'")
    return Credentials(user=user, password=pw)


def credentials_from(env: dict[str, str] | None = None) -> Credentials:
    env = os.environ if env is None else env
    if env.get("CEUSTREAM_PACS_CREDENTIALS"):
        return read_credentials_file(env["CEUSTREAM_PACS_CREDENTIALS"])
    if env.get("CEUSTREAM_PACS_TOKEN"):
        return Credentials(token=env["CEUSTREAM_PACS_TOKEN"])
    if env.get("CEUSTREAM_PACS_USER"):
        return Credentials(user=env["CEUSTREAM_PACS_USER"],
                           password=env.get("CEUSTREAM_PACS_PASSWORD", ""))
    return Credentials()


def tls_from(env: dict[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    cert, key = env.get("CEUSTREAM_PACS_CERT"), env.get("CEUSTREAM_PACS_KEY")
    if bool(cert) != bool(key):
        raise UsageError("CEUSTREAM_PACS_CERT and CEUSTREAM_PACS_KEY go together")
    for name in ("CEUSTREAM_PACS_CA", "CEUSTREAM_PACS_CERT", "CEUSTREAM_PACS_KEY"):
        if env.get(name) and not Path(env[name]).is_file():
            raise UsageError(f"{name}: {env[name]!r} is not a readable file")
    return {"ca": env.get("CEUSTREAM_PACS_CA") or None, "cert": (cert, key) if cert else None}


def dimse_options(opts: str) -> tuple[str, int | None]:
    """``retrieve=get|move`` and ``move-port=N`` from a dimse address's query."""
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(opts, keep_blank_values=True, strict_parsing=bool(opts))
    except ValueError:
        raise UsageError("PACS address: the part after '?' must be key=value pairs "
                         "(retrieve=get|move, move-port=N)") from None
    got = dict(pairs)
    unknown = sorted(set(got) - {"retrieve", "move-port"})
    if unknown or len(got) != len(pairs):
        raise UsageError(f"PACS address: unknown or repeated option(s) {unknown or ''} "
                         "(known: retrieve=get|move, move-port=N)")
    retrieve = got.get("retrieve", "get").lower()
    if retrieve not in ("get", "move"):
        raise UsageError("PACS address: retrieve=get or retrieve=move")
    port = got.get("move-port")
    if retrieve == "move":
        if port is None or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError("PACS address: retrieve=move needs move-port=N (1-65535), the "
                             "port the PACS sends our AE title the cines on")
        return retrieve, int(port)
    if port is not None:
        raise UsageError("PACS address: move-port applies only with retrieve=move")
    return retrieve, None


def parse(text: str, our_aet: str = "CEUSTREAM", env: dict[str, str] | None = None) -> Peer:
    """A PACS address as a ``Peer``; a one-line ``UsageError`` naming what is wrong."""
    text = str(text)
    low = text.lower()
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError("PACS address: control characters")
    our = check_aet(our_aet, "our AE title")
    if low.startswith(("dimse://", "dimse+tls://")):
        tls = low.startswith("dimse+tls://")
        rest, _, opts = text.split("://", 1)[1].partition("?")
        rest = rest.rstrip("/")
        retrieve, move_port = dimse_options(opts)
        if retrieve == "move" and tls:
            raise UsageError("PACS address: retrieve=move is not offered over dimse+tls "
                             "(C-GET is: leave out ?retrieve=move)")
        aet, at, hostport = rest.rpartition("@")
        if not at:
            raise UsageError("PACS address: dimse://AET@host:port (the peer's AE title first)")
        host, colon, port = hostport.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"PACS address dimse://{aet}@...: needs host:port (1-65535)")
        return Peer("dimse", host.strip("[]"), int(port), aet=check_aet(aet, "peer AE title"),
                    our_aet=our, credentials=credentials_from(env), tls=tls,
                    retrieve=retrieve, move_port=move_port, **tls_from(env))
    if low.startswith(("dicomweb+http://", "dicomweb+https://")):
        url = text[len("dicomweb+"):]
        u = urlsplit(url)
        if u.username is not None or u.password is not None:
            raise UsageError("PACS address: credentials in the address are refused (they would "
                             "show in the process list); set CEUSTREAM_PACS_CREDENTIALS or "
                             "CEUSTREAM_PACS_USER/CEUSTREAM_PACS_PASSWORD")
        if u.query or u.fragment:
            raise UsageError("PACS address: no query in the address (use the --study-date, "
                             "--accession, --study-uid, --series-uid options)")
        try:
            port = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            raise UsageError("PACS address: the port is not a number in 1-65535") from None
        if not u.hostname:
            raise UsageError("PACS address: no host")
        return Peer("dicomweb", u.hostname, port, url=url.rstrip("/"), our_aet=our,
                    credentials=credentials_from(env), tls=u.scheme == "https",
                    **tls_from(env))
    raise UsageError(f"not a PACS address (expected {', '.join(SCHEMES)})")
