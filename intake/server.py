"""``jcdiag intake serve``: the intake's configuration, its service object, and uvicorn.

The HTTP side is :mod:`intake.app` (Starlette), served by uvicorn with limits a
public service needs: TLS (``--tls-cert/--tls-key``), ``--workers N`` processes on
one socket, a bound on open connections (``--limit-concurrency``, 503 beyond),
an idle keep-alive timeout, a deadline for a request's head
(:class:`StrictH11Protocol`: a client trickling a header line every few seconds is
cut off) and, in the app, an idle and minimum-rate deadline for bodies.

The process keeps no state: storage holds everything (:mod:`intake.storage`), the
data directory holds only configuration (the token-signing secret and, when no
``--recipient`` is given, the support key pair it made on first start).  The
service never needs a private key: it publishes public keys and stores sealed
bundles; the generated private key sits in the data directory for the engineer.
"""
from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from collector.envelope import keygen, load_recipient

from .metrics import Stats
from .notify import Notifier
from .storage import Storage, open_storage
from .tokens import Claims, TokenError, load_or_create_secret, verify
from .tus import DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_OPEN, DEFAULT_MIN_FREE, Limits, TusService

log = logging.getLogger("jcdiag.intake")

DEFAULT_PORT = 8080
DEFAULT_MAX_SIZE = 2 * 1024 ** 3
DEFAULT_EXPIRE_AFTER = 24 * 3600
KEY_PREFIX = "support"                  # data dir: support.key.pem / support.pub.pem
ENV_CONFIG = "JCDIAG_INTAKE_CONFIG"     # the whole config as JSON (set for --workers children)


@dataclass
class IntakeConfig:
    data_dir: Path = Path("intake-data")
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    recipients: list[Path] = field(default_factory=list)
    s3_endpoint: Optional[str] = None
    s3_bucket: Optional[str] = None
    max_size: int = DEFAULT_MAX_SIZE
    expire_after: float = DEFAULT_EXPIRE_AFTER
    sweep_every: float = 300.0
    max_open_uploads: int = DEFAULT_MAX_OPEN
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    min_free_disk: int = DEFAULT_MIN_FREE
    tls_cert: Optional[Path] = None
    tls_key: Optional[Path] = None
    workers: int = 1
    limit_concurrency: int = 1000       # open connections + running requests, per process
    backlog: int = 2048
    timeout_keep_alive: float = 5.0     # idle seconds between requests on a connection
    header_timeout: float = 15.0        # seconds for a request line and headers to arrive
    body_timeout: float = 30.0          # seconds without a body byte
    body_min_rate: float = 32 * 1024    # bytes/s a body must average (after body_timeout)
    notify_url: Optional[str] = None
    public_url: Optional[str] = None    # how engineers reach this intake (notify's content_url)
    notify_attempts: int = 5
    notify_delay: float = 1.0

    def to_json(self) -> str:
        return json.dumps({k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "recipients"
                               else v) for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> "IntakeConfig":
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in raw.items() if k in known})
        config.data_dir = Path(config.data_dir)
        config.recipients = [Path(p) for p in config.recipients]
        config.tls_cert = Path(config.tls_cert) if config.tls_cert else None
        config.tls_key = Path(config.tls_key) if config.tls_key else None
        return config


def config_from_env() -> IntakeConfig:
    """The configuration for ``uvicorn intake.app:create_app --factory`` (and gunicorn workers):
    ``JCDIAG_INTAKE_CONFIG`` (JSON of :class:`IntakeConfig`), else ``JCDIAG_INTAKE_DATA``,
    ``JCDIAG_INTAKE_S3_ENDPOINT``, ``JCDIAG_INTAKE_S3_BUCKET``, ``JCDIAG_INTAKE_NOTIFY_URL``."""
    if os.environ.get(ENV_CONFIG):
        return IntakeConfig.from_json(os.environ[ENV_CONFIG])
    env = os.environ.get
    return IntakeConfig(data_dir=Path(env("JCDIAG_INTAKE_DATA", "intake-data")),
                        s3_endpoint=env("JCDIAG_INTAKE_S3_ENDPOINT") or None,
                        s3_bucket=env("JCDIAG_INTAKE_S3_BUCKET") or None,
                        notify_url=env("JCDIAG_INTAKE_NOTIFY_URL") or None)


class Intake:
    """The service: storage, token secret, recipients and the tus logic, shared by all requests."""

    def __init__(self, config: IntakeConfig, storage: Optional[Storage] = None):
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(config.data_dir, 0o700)
        self.storage = storage or open_storage(config.data_dir, config.s3_endpoint, config.s3_bucket)
        self.secret = load_or_create_secret(config.data_dir)
        self.recipients = publishable_recipients(config.data_dir, config.recipients)
        self.stats = Stats()
        limits = Limits(config.max_open_uploads, config.max_inflight, config.min_free_disk)
        self.tus = TusService(self.storage, config.max_size, config.expire_after, self.stats,
                              log=log.info, limits=limits)
        self.notifier = Notifier(config.notify_url, self.stats.add, config.notify_attempts,
                                 config.notify_delay) if config.notify_url else None

    def claims(self, authorization: Optional[str]) -> Claims:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise TokenError("no token: send Authorization: Bearer <token> (jcdiag --token-file F)")
        return verify(self.secret, authorization[7:].strip())


def publishable_recipients(data_dir: Path, given: list[Path]) -> list[dict]:
    """The public keys to publish: the ``--recipient`` files, else the data dir's own pair.

    The pair is made on first start (``collector.envelope.keygen``: private half
    0600) so that ``intake serve`` alone is a working loop on one machine.
    """
    paths = list(given)
    if not paths:
        pub = data_dir / f"{KEY_PREFIX}.pub.pem"
        if not pub.exists():
            keygen(data_dir / KEY_PREFIX)
            log.info("made a support key pair in %s (%s.key.pem opens bundles: keep it safe)",
                     data_dir, KEY_PREFIX)
        paths = [pub]
    published = []
    for path in paths:
        pem = Path(path).read_bytes()
        recipient = load_recipient(pem, str(path))        # refuses private keys and small keys
        published.append({"key_id": recipient.key_id, "pem": pem.decode("ascii"),
                          "label": Path(path).name})
    return published


def lifecycle_table(data_dir: Path) -> bytes:
    """``GET /api/v1/lifecycle`` (no token: public data): the lifecycle table collectors refresh
    theirs from, in jcdiag's own format.  The newest valid one of: the support team's vetted
    copy ``<data>/lifecycle.json`` (e.g. ``JCDIAG_LIFECYCLE_FILE=<data>/lifecycle.json jcdiag
    lifecycle update``), the copy stored on this machine, the one bundled with jcdiag."""
    from collector.lifecycle_data import effective_table, render, stored_table

    table = effective_table()
    vetted = stored_table(data_dir / "lifecycle.json")
    if vetted is not None and vetted["data_date"] > table["data_date"]:
        table = vetted
    return render(table).encode("utf-8")


class StrictH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for the request head.

    uvicorn times out idle keep-alive connections, but once a byte arrives it waits
    for the rest of the head forever; this closes a connection whose request line
    and headers are not complete ``jcdiag_header_timeout`` seconds after it opened
    (or after its previous response).  The value travels on uvicorn's Config so
    ``--workers`` children (spawned, the config pickled) keep it.
    """

    _head_timer = None
    _head = b""

    def data_received(self, data: bytes) -> None:
        """Refuse a request head that repeats a framing header, even with the same value.

        h11 folds ``Content-Length: 10`` twice (or ``10, 10``) into one, so the app
        never sees the repeat; a proxy in front may have read it differently.  Only
        heads that arrive while no request is in progress are scanned (bounded by
        h11's 16 KiB head limit); the app checks the parsed headers as well.
        """
        if self.conn.their_state is h11.IDLE and len(self._head) < 65536:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end >= 0:
                head, self._head = self._head[:end], b""
                problem = repeated_framing(head)
                if problem:
                    log.warning("refused a request from %s: %s", (self.client or ("?",))[0], problem)
                    body = json.dumps({"error": problem + "; send it once"}).encode() + b"\n"
                    self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                                         b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
                    self.transport.close()
                    return
        else:
            self._head = b""
        super().data_received(data)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        seconds = getattr(self.config, "jcdiag_header_timeout", 15.0)
        self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.warning("closed a connection from %s: request head not complete in time",
                        (self.client or ("?",))[0])
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


_FRAMING = (b"content-length", b"transfer-encoding")


def repeated_framing(head: bytes) -> Optional[str]:
    """Why a raw request head is refused: a framing header given twice or as a list."""
    seen = set()
    for raw in head.split(b"\r\n")[1:]:
        name, sep, value = raw.partition(b":")
        name = name.strip().lower()
        if sep and name in _FRAMING:
            if name in seen or (name == b"content-length" and b"," in value):
                return f"repeated {name.decode()} header"
            seen.add(name)
    return None


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas: with a thread pool moving megabyte buffers, the
    default (8 per core) lets RSS grow with fragmentation rather than with the data in flight."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)        # M_ARENA_MAX
    except (OSError, AttributeError):
        pass                                                 # not glibc: nothing to cap


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """The listening socket, bound here so a busy port is an OSError the command reports in one
    line (uvicorn would log it and exit 3, which is jcdiag's "collectors failed")."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)                    # connections queue from the announcement on
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)                  # --workers children serve it too
    return sock


def prepare(config: IntakeConfig) -> Intake:
    """Everything that must exist once before workers start (secret, key pair, storage check)."""
    return Intake(config)


def serve(config: IntakeConfig, announce: Optional[Callable[[str], None]] = None) -> None:
    """Run until SIGINT/SIGTERM (uvicorn's handlers), expiring abandoned uploads meanwhile."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from .app import create_app

    announce = announce or log.info
    limit_malloc_arenas()
    intake = prepare(config)
    os.environ[ENV_CONFIG] = config.to_json()
    app = create_app(intake=intake) if config.workers <= 1 else "intake.app:create_app"
    uv = uvicorn.Config(
        app, factory=config.workers > 1, host=config.host, port=config.port, http=StrictH11Protocol,
        workers=config.workers, limit_concurrency=config.limit_concurrency, backlog=config.backlog,
        timeout_keep_alive=int(config.timeout_keep_alive), timeout_graceful_shutdown=30,
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        access_log=False, log_config=None, server_header=False, proxy_headers=False,
        h11_max_incomplete_event_size=16 * 1024, lifespan="on")
    uv.jcdiag_header_timeout = config.header_timeout
    if config.tls_cert:                         # bad TLS files fail here, before binding
        import ssl
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(config.tls_cert, config.tls_key)
    sock = listen(config.host, config.port, config.backlog)
    host, port = sock.getsockname()[:2]
    scheme = "https" if config.tls_cert else "http"
    announce(f"jcdiag intake listening on {scheme}://{host}:{port}/ (tus /files/, API /api/v1/; "
             f"storage: {intake.storage.description}; {len(intake.recipients)} recipient key(s); "
             f"max upload {config.max_size} bytes; {config.workers} worker(s))")
    server = uvicorn.Server(uv)
    if config.workers > 1:
        try:
            supervisor = Multiprocess(uv, sockets=[sock])
        except TypeError:                       # uvicorn before 0.36 takes the target itself
            supervisor = Multiprocess(uv, target=server.run, sockets=[sock])
        supervisor.run()
    else:
        server.run(sockets=[sock])
