"""``jcdiag intake serve``: the reference case-intake service over the standard library's HTTP server.

Routes (tus under ``/files/``, a small JSON API under ``/api/v1/``)::

    OPTIONS /files/                       tus discovery (no token needed)
    POST    /files/                       create an upload        (upload token for the case)
    HEAD    /files/<id>                   offset, and the verified sha256 once finished
    PATCH   /files/<id>                   one chunk, Upload-Checksum checked
    DELETE  /files/<id>                   cancel an unfinished upload
    GET     /api/v1/recipients            the support public keys collectors seal to (public)
    GET     /api/v1/lifecycle             the lifecycle table collectors refresh theirs from (public)
    GET     /api/v1/token/check?case=ID   pre-flight: is this token good for this case
    GET     /api/v1/bundles[?case=ID]     finished, verified bundles      (engineer token)
    GET     /api/v1/bundles/<id>[?case=C] one bundle's record; 409 with "matches" when the ID
                                          exists in several cases and no case is given
    GET     /api/v1/bundles/<id>/content[?case=C]  the bundle, streamed; honours Range: bytes=N-
                                          (206 Partial Content) so a cut download resumes
    GET     /api/v1/stats                 this process's counters         (engineer token)

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
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

from collector.envelope import keygen, load_recipient
from collector.ids import normalize

from .storage import READ_CHUNK, Storage, StorageError, open_storage
from .tokens import Claims, TokenError, load_or_create_secret, verify
from .tus import (CHECKSUMS, EXTENSIONS, TUS_VERSION, VERIFIED_HEADER, ClientGone, HttpError,
                  Stats, TusService, checksum_b64, http_date)

log = logging.getLogger("jcdiag.intake")

DEFAULT_PORT = 8080
DEFAULT_MAX_SIZE = 2 * 1024 ** 3
DEFAULT_EXPIRE_AFTER = 24 * 3600
KEY_PREFIX = "support"                  # data dir: support.key.pem / support.pub.pem
SMALL_BODY = 64 * 1024
_UPLOAD_PATH = re.compile(r"^/files/([^/]+)$")
_RANGE = re.compile(r"^bytes=(\d{1,15})-$")
_BUNDLE_PATH = re.compile(r"^/api/v1/bundles/([^/]+)(/content)?$")


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
        self.tus = TusService(self.storage, config.max_size, config.expire_after, self.stats,
                              log=log.info)

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jcdiag-intake"
    timeout = 60                         # a stalled client frees its thread after this

    @property
    def app(self) -> Intake:
        return self.server.app          # type: ignore[attr-defined]

    # --------------------------------------------------------------- plumbing

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's name
        log.info("%s %s", self.address_string(), format % args)

    def _content_length(self) -> int:
        try:
            value = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
        if value < 0:
            raise HttpError(400, "Content-Length is negative")
        return value

    def _discard_small_body(self) -> None:
        length = self._content_length()
        if length > SMALL_BODY:
            self.close_connection = True
        elif length:
            self.rfile.read(length)
        self._body_read = True

    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None,
              content_type: Optional[str] = None, tus: bool = False) -> None:
        if not getattr(self, "_body_read", False) and self.command in ("POST", "PATCH", "PUT"):
            self.close_connection = True          # an unread body must not be parsed as a request
        reason = "Checksum Mismatch" if status == 460 else None
        self.send_response(status, reason)
        if tus:
            self.send_header("Tus-Resumable", TUS_VERSION)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: dict, headers: Optional[dict] = None, tus: bool = False) -> None:
        self._send(status, json.dumps(data).encode() + b"\n", headers, "application/json", tus)

    def _base_url(self) -> str:
        proto = self.headers.get("X-Forwarded-Proto", "http").split(",")[0].strip() or "http"
        host = self.headers.get("X-Forwarded-Host") or self.headers.get("Host") or \
            f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        return f"{proto}://{host.split(',')[0].strip()}"

    # --------------------------------------------------------------- dispatch

    def do_OPTIONS(self): self._dispatch("OPTIONS")     # noqa: E704
    def do_HEAD(self): self._dispatch("HEAD")           # noqa: E704
    def do_GET(self): self._dispatch("GET")             # noqa: E704
    def do_POST(self): self._dispatch("POST")           # noqa: E704
    def do_PATCH(self): self._dispatch("PATCH")         # noqa: E704
    def do_DELETE(self): self._dispatch("DELETE")       # noqa: E704

    def _dispatch(self, method: str) -> None:
        self._body_read = method in ("GET", "HEAD", "OPTIONS", "DELETE")
        override = self.headers.get("X-HTTP-Method-Override")
        if method == "POST" and override:
            method = override.upper()
        path = urlsplit(self.path).path
        tus = path == "/files" or path.startswith("/files/")
        try:
            self._route(method, path, tus)
        except HttpError as exc:
            self._refuse(exc.status, str(exc), exc.headers, exc.extra, tus)
        except TokenError as exc:
            self._refuse(exc.status, str(exc), {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {},
                         {}, tus)
        except ClientGone:
            self.close_connection = True
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except StorageError as exc:
            log.error("storage failed: %s", exc)
            self._refuse(503, f"storage unavailable: {exc}", {"Retry-After": "5"}, {}, tus)
        except Exception:  # noqa: BLE001 - one broken request must not stop the service
            log.exception("error answering %s %s", method, path)
            self._refuse(500, "internal error; try again", {}, {}, tus)

    def _refuse(self, status: int, message: str, headers: dict, extra: dict, tus: bool) -> None:
        routine = status == 404 or (status == 409 and "Upload-Offset" in headers)
        if not routine:
            log.warning("refused %s %s: %d %s", self.command, urlsplit(self.path).path, status, message)
        if status == 412:
            headers = {**headers, "Tus-Version": TUS_VERSION}
        try:
            self._json(status, {"error": message, **extra}, headers, tus)
        except OSError:
            self.close_connection = True

    def _route(self, method: str, path: str, tus: bool) -> None:
        if path in ("/files", "/files/"):
            if method == "OPTIONS":
                return self._tus_options()
            self._require_tus()
            if method == "POST":
                return self._tus_create()
            raise HttpError(405, f"{method} is not allowed on /files/")
        m = _UPLOAD_PATH.match(path)
        if m:
            if method == "OPTIONS":
                return self._tus_options()
            self._require_tus()
            handler = {"HEAD": self._tus_head, "PATCH": self._tus_patch,
                       "DELETE": self._tus_delete}.get(method)
            if handler is None:
                raise HttpError(405, f"{method} is not allowed on an upload")
            return handler(m.group(1))
        if method not in ("GET", "HEAD"):
            if path == "/" and method == "OPTIONS":
                return self._send(204, headers={"Allow": "GET, OPTIONS"})
            raise HttpError(405, f"{method} is not allowed here")
        if path == "/":
            return self._json(200, {"service": "jcdiag-intake", "tus": "/files/", "api": "/api/v1/"})
        if path == "/api/v1/recipients":
            return self._json(200, {"recipients": self.app.recipients})
        if path == "/api/v1/lifecycle":
            return self._send(200, lifecycle_table(self.app.config.data_dir), content_type="application/json")
        if path == "/api/v1/token/check":
            return self._token_check()
        if path == "/api/v1/stats":
            self.app.claims(self.headers.get("Authorization")).allow_engineer()
            return self._json(200, self.app.stats.snapshot())
        if path == "/api/v1/bundles":
            self.app.claims(self.headers.get("Authorization")).allow_engineer()
            case = (parse_qs(urlsplit(self.path).query).get("case") or [None])[0]
            return self._json(200, {"bundles": list(self.app.tus.records(case))})
        m = _BUNDLE_PATH.match(path)
        if m:
            self.app.claims(self.headers.get("Authorization")).allow_engineer()
            case = (parse_qs(urlsplit(self.path).query).get("case") or [None])[0]
            return self._bundle(m.group(1), bool(m.group(2)), case)
        raise HttpError(404, f"nothing at {path}: the tus endpoint is /files/, the API /api/v1/")

    # --------------------------------------------------------------- tus

    def _require_tus(self) -> None:
        if self.headers.get("Tus-Resumable") != TUS_VERSION:
            raise HttpError(412, f"this server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}")

    def _tus_options(self) -> None:
        self._send(204, headers={"Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
                                 "Tus-Max-Size": self.app.config.max_size,
                                 "Tus-Checksum-Algorithm": ",".join(CHECKSUMS)}, tus=True)

    def _expiry_headers(self, last_activity: float) -> dict:
        return {"Upload-Expires": http_date(last_activity + self.app.config.expire_after)}

    def _tus_create(self) -> None:
        self._discard_small_body()
        claims = self.app.claims(self.headers.get("Authorization"))
        info = self.app.tus.create(claims, self.headers.get("Upload-Length"),
                                   self.headers.get("Upload-Metadata", ""))
        log.info("upload %s created: bundle %s, case %s, %d bytes", info.id, info.bundle_id,
                 info.case_id, info.length)
        self._send(201, headers={"Location": f"{self._base_url()}/files/{info.id}",
                                 **self._expiry_headers(info.created)}, tus=True)

    def _offset_headers(self, snap, offset: int) -> dict:
        headers = {"Upload-Offset": offset, "Upload-Length": snap.info.length,
                   **self._expiry_headers(snap.last_activity)}
        if snap.info.metadata:
            headers["Upload-Metadata"] = snap.info.metadata_header()
        if snap.info.completed:
            headers[VERIFIED_HEADER] = f"sha256 {checksum_b64(snap.info.completed['sha256'])}"
        return headers

    def _tus_head(self, uid: str) -> None:
        snap = self.app.tus.snapshot(uid, self.app.claims(self.headers.get("Authorization")))
        offset = snap.info.length if snap.info.completed else snap.offset
        self._send(200, headers=self._offset_headers(snap, offset), tus=True)

    def _tus_patch(self, uid: str) -> None:
        claims = self.app.claims(self.headers.get("Authorization"))
        content_type = self.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip() != "application/offset+octet-stream":
            raise HttpError(415, "PATCH bodies must be Content-Type: application/offset+octet-stream")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(411, "send PATCH bodies with a Content-Length")
        length = self._content_length()
        self.app.stats.add("patches")
        snap, offset = self.app.tus.receive(uid, claims, self.headers.get("Upload-Offset"), length,
                                            self.rfile, self.headers.get("Upload-Checksum"))
        self._body_read = True
        self._send(204, headers=self._offset_headers(snap, offset), tus=True)

    def _tus_delete(self, uid: str) -> None:
        self.app.tus.terminate(uid, self.app.claims(self.headers.get("Authorization")))
        log.info("upload %s cancelled by the client", uid)
        self._send(204, tus=True)

    # --------------------------------------------------------------- API

    def _token_check(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        claims = self.app.claims(self.headers.get("Authorization"))
        scope = (query.get("scope") or ["upload"])[0]
        if scope == "engineer":
            claims.allow_engineer()
        else:
            claims.allow_upload((query.get("case") or [None])[0])
        expires = datetime.fromtimestamp(claims.expires, timezone.utc).isoformat()
        self._json(200, {"ok": True, "scope": claims.scope, "case_id": claims.case_id, "expires": expires,
                         "max_size": self.app.config.max_size})

    def _bundle(self, raw_id: str, content: bool, case_id: Optional[str]) -> None:
        try:
            bundle_id = normalize(raw_id)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        found = self.app.tus.matches(bundle_id, case_id)
        if not found:
            raise HttpError(404, f"no finished bundle {bundle_id} here"
                                 + (f" in case {case_id}" if case_id else "")
                                 + ": check the ID in the ticket, or the upload has not completed yet")
        if len(found) > 1:
            cases = sorted(str(r.get("case_id")) for r in found)
            raise HttpError(409, f"bundle ID {bundle_id} exists in cases {', '.join(cases)}: add ?case=ID",
                            extra={"matches": found})
        record = found[0]
        if not content:
            return self._json(200, record)
        size = record["size"]
        start = self._range_start(size)
        try:
            reader = self.app.storage.open(record["object"])
        except KeyError:
            raise HttpError(500, f"bundle {bundle_id} is listed but its file is missing") from None
        with reader:
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "application/x-7z-compressed")
            self.send_header("Content-Length", str(size - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Disposition", f'attachment; filename="{bundle_id}.7z"')
            self.send_header("X-Content-SHA256", record["sha256"])
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command == "HEAD":
                return
            skip = start
            while skip:
                skipped = len(reader.read(min(READ_CHUNK, skip)))
                if not skipped:
                    break
                skip -= skipped
            sent = start
            while sent < size:
                data = reader.read(min(READ_CHUNK, size - sent))
                if not data:
                    break
                self.wfile.write(data)
                sent += len(data)
            if sent != size:
                self.close_connection = True        # the client sees a short body, not a bad file

    def _range_start(self, size: int) -> int:
        """The first byte a ``Range: bytes=N-`` asks for (0 without one); 416 past the end.

        Only the open-ended single range resuming clients send is served; any other
        form gets the whole file (RFC 9110 lets a server ignore Range).
        """
        value = (self.headers.get("Range") or "").strip()
        m = _RANGE.match(value)
        if not m:
            return 0
        start = int(m.group(1))
        if start >= size:
            raise HttpError(416, f"the bundle has {size} bytes; nothing at byte {start}",
                            headers={"Content-Range": f"bytes */{size}"})
        return start


class IntakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, app: Intake):
        super().__init__(address, Handler)
        self.app = app

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.info("%s: connection dropped (%s)", client_address[0], type(exc).__name__)
            return
        log.exception("error serving %s", client_address[0])


def make_server(config: IntakeConfig, storage: Optional[Storage] = None) -> IntakeHTTPServer:
    """A bound (not yet serving) intake server; ``server.server_address`` has the real port."""
    return IntakeHTTPServer((config.host, config.port), Intake(config, storage))


def _sweeper(server: IntakeHTTPServer, every: float, stop: threading.Event) -> None:
    while not stop.wait(every):
        try:
            server.app.tus.sweep()
        except Exception:  # noqa: BLE001 - keep sweeping; the next run may succeed
            log.exception("expiring abandoned uploads failed")


def serve(config: IntakeConfig, announce: Callable[[str], None]) -> None:
    """Run until SIGINT/SIGTERM, expiring abandoned uploads in the background."""
    server = make_server(config)
    host, port = server.server_address[:2]
    server.app.tus.sweep()
    stop = threading.Event()
    threading.Thread(target=_sweeper, args=(server, config.sweep_every, stop), daemon=True).start()

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    announce(f"jcdiag intake listening on http://{host}:{port}/ (tus /files/, API /api/v1/; "
             f"storage: {server.app.storage.description}; {len(server.app.recipients)} recipient key(s); "
             f"max upload {config.max_size} bytes)")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
