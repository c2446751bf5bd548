"""The intake as an ASGI application (Starlette): tus under ``/files/``, a JSON API under ``/api/v1/``.

Routes::

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
    GET     /api/v1/stats                 this process's counters         (engineer token)
    GET     /metrics                      Prometheus counters (no token: serve it internally)
    GET     /healthz                      the process answers
    GET     /readyz                       storage answers (503 otherwise)

:func:`create_app` builds it from an :class:`intake.server.IntakeConfig` (or from
the environment, for ``uvicorn intake.app:create_app --factory`` and gunicorn
workers).  The :class:`Guard` middleware sits in front of every route: it refuses
repeated or malformed framing headers (a proxy and this server must never
disagree about where a request ends), and writes the one JSON log line per
request.  Blocking storage work runs in the thread pool; request bodies are read
asynchronously with an idle timeout and an overall deadline.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from collector.ids import normalize

from . import logs
from .server import Intake, IntakeConfig, config_from_env, lifecycle_table
from .storage import READ_CHUNK, StorageError, StorageFull
from .tokens import TokenError
from .tus import (CHECKSUMS, EXTENSIONS, TUS_VERSION, VERIFIED_HEADER, ClientGone, HttpError,
                  PartWriter, checksum_b64, http_date, strict_length)

log = logging.getLogger("jcdiag.intake")
SMALL_BODY = 64 * 1024
WRITE_BATCH = 256 * 1024                # body bytes gathered before one write (and hash), off the loop
_RANGE = re.compile(r"^bytes=(\d{1,15})-\Z")
#: Headers that decide framing, identity or meaning: one copy each, or 400.
SINGLE = {b"content-length", b"transfer-encoding", b"host", b"authorization", b"content-type",
          b"upload-offset", b"upload-length", b"upload-checksum", b"upload-metadata",
          b"tus-resumable", b"range", b"x-http-method-override", b"upload-defer-length"}


class Guard:
    """Strict framing, the access log and a request deadline, around the whole app."""

    def __init__(self, app, intake: Intake):
        self.app, self.intake = app, intake

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        state = scope.setdefault("state", {})
        counts = {"in": 0, "out": 0, "status": 0}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                counts["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message):
            if message["type"] == "http.response.start":
                counts["status"] = message["status"]
            elif message["type"] == "http.response.body":
                counts["out"] += len(message.get("body", b""))
            await send(message)

        if scope["path"].startswith(("http://", "https://")):
            scope = origin_form(scope)
        problem = framing_problem(scope["headers"])
        try:
            if problem:
                await refusal(400, problem, {"Connection": "close"}, {}, tus=False)(
                    scope, counting_receive, counting_send)
            else:
                await self.app(scope, counting_receive, counting_send)
        finally:
            fields = {"method": scope["method"],
                      "path": scope.get("raw_path", b"").decode("latin-1") or scope["path"],
                      "status": counts["status"], "bytes_in": counts["in"], "bytes_out": counts["out"],
                      "duration_ms": round((time.monotonic() - started) * 1000, 1),
                      "client": (scope.get("client") or ("", 0))[0]}
            for key in ("case", "bundle_id", "upload", "error"):
                if state.get(key) is not None:
                    fields[key] = state[key]
            logs.access(fields)


def origin_form(scope: dict) -> dict:
    """A request in absolute form (``GET http://host/path``, as sent through a forward proxy)
    routed by its path, as RFC 9112 asks servers to accept."""
    path = urlsplit(scope["path"]).path or "/"
    raw = urlsplit(scope.get("raw_path", b"").decode("latin-1")).path or "/"
    return {**scope, "path": path, "raw_path": raw.encode("latin-1")}


def framing_problem(headers: list[tuple[bytes, bytes]]) -> Optional[str]:
    """Why these raw headers are refused, or None: repeats of :data:`SINGLE` headers, a
    Content-Length that is not plain digits, or Content-Length with Transfer-Encoding."""
    seen: set[bytes] = set()
    for name, value in headers:
        name = name.lower()
        if name in SINGLE:
            if name in seen:
                return f"the {name.decode()} header is repeated; send it once"
            seen.add(name)
        if name == b"content-length" and not re.fullmatch(rb"[0-9]{1,19}", value):
            return "Content-Length must be plain digits"
    if b"content-length" in seen and b"transfer-encoding" in seen:
        return "send either Content-Length or Transfer-Encoding, not both"
    return None


def refusal(status: int, message: str, headers: dict, extra: dict, tus: bool) -> Response:
    body = json.dumps({"error": message, **extra}).encode() + b"\n"
    out = {"Cache-Control": "no-store", **{k: str(v) for k, v in headers.items()}}
    if tus:
        out["Tus-Resumable"] = TUS_VERSION
    if status == 412:
        out["Tus-Version"] = TUS_VERSION
    return Response(body, status, out, media_type="application/json")


def answer(status: int, headers: Optional[dict] = None, data: Optional[dict] = None,
           tus: bool = False) -> Response:
    out = {"Cache-Control": "no-store", **{k: str(v) for k, v in (headers or {}).items()}}
    if tus:
        out["Tus-Resumable"] = TUS_VERSION
    if data is None:
        return Response(b"", status, out)
    return Response(json.dumps(data).encode() + b"\n", status, out, media_type="application/json")


def endpoint(tus: bool = False):
    """Turn the service's exceptions into answers, each logged once with its reason."""
    def wrap(fn):
        async def run(request: Request) -> Response:
            intake: Intake = request.app.state.intake
            try:
                return await fn(request, intake)
            except HttpError as exc:
                return _refuse(request, exc.status, str(exc), exc.headers, exc.extra, tus)
            except TokenError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
                return _refuse(request, exc.status, str(exc), headers, {}, tus)
            except StorageFull as exc:
                intake.stats.add("disk_refusals")
                log.error("disk full answering %s %s: %s", request.method, request.url.path, exc)
                return _refuse(request, 507, f"the intake ran out of disk space ({exc}); the chunk was "
                                             "not stored: try again later", {"Retry-After": "300"}, {}, tus)
            except StorageError as exc:
                log.error("storage failed: %s", exc)
                return _refuse(request, 503, f"storage unavailable: {exc}", {"Retry-After": "5"}, {}, tus)
            except Exception:  # noqa: BLE001 - one broken request must not stop the service
                log.exception("error answering %s %s", request.method, request.url.path)
                return _refuse(request, 500, "internal error; try again", {}, {}, tus)
        return run
    return wrap


def _refuse(request: Request, status: int, message: str, headers: dict, extra: dict, tus: bool) -> Response:
    request.state.error = message[:300]
    routine = status == 404 or (status == 409 and "Upload-Offset" in headers)
    if not routine:
        log.warning("refused %s %s: %d %s", request.method, request.url.path, status, message)
    if request.method in ("POST", "PATCH") and not getattr(request.state, "body_read", False):
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > SMALL_BODY:
            headers = {**headers, "Connection": "close"}      # do not read a big unwanted body
    return refusal(status, message, headers, extra, tus)


def _claims(request: Request, intake: Intake):
    claims = intake.claims(request.headers.get("authorization"))
    if claims.case_id:
        request.state.case = claims.case_id
    return claims


def _require_tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise HttpError(412, f"this server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}")


def _method(request: Request) -> str:
    override = request.headers.get("x-http-method-override")
    if request.method == "POST" and override:
        return override.upper()
    return request.method


def _base_url(request: Request) -> str:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip() or "http"
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
    return f"{proto}://{host.split(',')[0].strip()}"


# ----------------------------------------------------------------------------- tus


def _options(intake: Intake) -> Response:
    return answer(204, {"Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
                        "Tus-Max-Size": intake.config.max_size,
                        "Tus-Checksum-Algorithm": ",".join(CHECKSUMS)}, tus=True)


@endpoint(tus=True)
async def files_root(request: Request, intake: Intake) -> Response:
    method = _method(request)
    if method == "OPTIONS":
        return _options(intake)
    _require_tus(request)
    if method != "POST":
        raise HttpError(405, f"{method} is not allowed on /files/")
    await _discard_small_body(request)
    claims = _claims(request, intake)
    info = await run_in_threadpool(intake.tus.create, claims, request.headers.get("upload-length"),
                                   request.headers.get("upload-metadata", ""))
    request.state.bundle_id, request.state.upload, request.state.case = info.bundle_id, info.id, info.case_id
    log.info("upload %s created: bundle %s, case %s, %d bytes", info.id, info.bundle_id, info.case_id,
             info.length)
    return answer(201, {"Location": f"{_base_url(request)}/files/{info.id}",
                        **_expiry(intake, info.created)}, tus=True)


async def _discard_small_body(request: Request) -> None:
    """Creation carries no data here (no creation-with-upload): drop a small body, refuse a big one."""
    length = strict_length(request.headers.get("content-length", "0"), "Content-Length")
    if length > SMALL_BODY:
        raise HttpError(413, "this server takes data in PATCH requests only (no creation-with-upload)")
    if length:
        async for _ in request.stream():
            pass
    request.state.body_read = True


def _expiry(intake: Intake, last_activity: float) -> dict:
    return {"Upload-Expires": http_date(last_activity + intake.config.expire_after)}


def _offset_headers(intake: Intake, snap, offset: int) -> dict:
    headers = {"Upload-Offset": offset, "Upload-Length": snap.info.length,
               **_expiry(intake, snap.last_activity)}
    if snap.info.metadata:
        headers["Upload-Metadata"] = snap.info.metadata_header()
    if snap.info.completed:
        headers[VERIFIED_HEADER] = f"sha256 {checksum_b64(snap.info.completed['sha256'])}"
    return headers


@endpoint(tus=True)
async def files_one(request: Request, intake: Intake) -> Response:
    uid = request.path_params["uid"]
    method = _method(request)
    if method == "OPTIONS":
        return _options(intake)
    _require_tus(request)
    request.state.upload = uid[:40]
    claims = _claims(request, intake)
    if method == "HEAD":
        snap = await run_in_threadpool(intake.tus.snapshot, uid, claims)
        request.state.bundle_id = snap.info.bundle_id
        offset = snap.info.length if snap.info.completed else snap.offset
        return answer(200, _offset_headers(intake, snap, offset), tus=True)
    if method == "PATCH":
        return await _patch(request, intake, uid, claims)
    if method == "DELETE":
        await run_in_threadpool(intake.tus.terminate, uid, claims)
        log.info("upload %s cancelled by the client", uid)
        return answer(204, tus=True)
    raise HttpError(405, f"{method} is not allowed on an upload")


async def _patch(request: Request, intake: Intake, uid: str, claims) -> Response:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip() != "application/offset+octet-stream":
        raise HttpError(415, "PATCH bodies must be Content-Type: application/offset+octet-stream")
    if "content-length" not in request.headers:
        raise HttpError(411, "send PATCH bodies with a Content-Length")
    length = strict_length(request.headers["content-length"], "Content-Length")
    intake.stats.add("patches")
    tus = intake.tus
    snap, start = await run_in_threadpool(tus.check_patch, uid, claims, request.headers.get("upload-offset"),
                                          length)
    request.state.bundle_id = snap.info.bundle_id
    algorithm, expected = tus.parse_checksum(request.headers.get("upload-checksum"))
    with intake.storage.scratch_file() as scratch:
        writer = await run_in_threadpool(PartWriter, scratch, algorithm, tus.running_hash(uid, start))
        timed_out = False
        try:
            timed_out = await _read_body(request, writer, length, intake.config)
        finally:
            writer.close()
        request.state.body_read = writer.received == length
        try:
            snap, offset = await run_in_threadpool(tus.commit_part, uid, snap, start, length, writer, expected)
        except ClientGone:
            if timed_out:
                raise HttpError(408, f"the chunk arrived too slowly ({writer.received} of {length} bytes); "
                                     "ask HEAD for the offset and resume", {"Connection": "close"}) from None
            raise HttpError(400, "the request body ended early", {"Connection": "close"}) from None
    if snap.info.completed:
        _notify(request, intake, snap.info)
    return answer(204, _offset_headers(intake, snap, offset), tus=True)


async def _read_body(request: Request, writer: PartWriter, length: int, config: IntakeConfig) -> bool:
    """Stream the body into ``writer``; True if it stopped on a timeout.

    Two limits: no byte for ``body_timeout`` seconds, or slower on average than
    ``body_min_rate`` bytes/s past a grace of ``body_timeout`` (a client trickling a
    byte a second never ties up a slot for long).
    A disk that fills up is reported (507) only after the body has been read to
    its end, so the client hears why instead of a reset connection.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.body_timeout + length / config.body_min_rate
    chunks = request.stream().__aiter__()
    buffer = bytearray()
    seen, full, timed_out = 0, None, False
    while seen < length:
        wait = min(config.body_timeout, deadline - loop.time())
        if wait <= 0:
            timed_out = True
            break
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), wait)
        except (StopAsyncIteration, ClientDisconnect):
            break
        except asyncio.TimeoutError:
            timed_out = True
            break
        seen += len(chunk)
        if full is not None:
            continue                                  # drained, not stored
        buffer += chunk
        if len(buffer) >= WRITE_BATCH or seen >= length:
            try:
                await run_in_threadpool(writer.write, bytes(buffer))    # a slow disk never stalls the loop
            except StorageFull as exc:
                full = exc
            buffer.clear()
    if full is not None:
        raise full
    if buffer:
        await run_in_threadpool(writer.write, bytes(buffer))
    return timed_out


def _notify(request: Request, intake: Intake, info) -> None:
    if intake.notifier is None or not info.completed:
        return
    record = intake.tus.record(info.bundle_id, info.case_id) or {}
    if record.get("upload_id") != info.id or getattr(request.state, "notified", False):
        return
    request.state.notified = True
    path = f"/api/v1/bundles/{info.bundle_id}/content?{urlencode({'case': info.case_id})}"
    event = {"event": "bundle.verified", "bundle_id": info.bundle_id, "case_id": info.case_id,
             "sha256": record.get("sha256"), "size": record.get("size"),
             "uploaded_at": record.get("uploaded_at"), "content_path": path}
    if intake.config.public_url:       # never the request's Host: the uploader chooses that one
        event["content_url"] = intake.config.public_url.rstrip("/") + path
    intake.notifier.send(event)


# ----------------------------------------------------------------------------- API


@endpoint()
async def root(request: Request, intake: Intake) -> Response:
    if request.method == "OPTIONS":
        return answer(204, {"Allow": "GET, OPTIONS"})
    return answer(200, data={"service": "jcdiag-intake", "tus": "/files/", "api": "/api/v1/"})


@endpoint()
async def recipients(request: Request, intake: Intake) -> Response:
    return answer(200, data={"recipients": intake.recipients})


@endpoint()
async def lifecycle(request: Request, intake: Intake) -> Response:
    table = await run_in_threadpool(lifecycle_table, intake.config.data_dir)
    return Response(table, 200, {"Cache-Control": "no-store"}, media_type="application/json")


@endpoint()
async def token_check(request: Request, intake: Intake) -> Response:
    claims = _claims(request, intake)
    if request.query_params.get("scope", "upload") == "engineer":
        claims.allow_engineer()
    else:
        claims.allow_upload(request.query_params.get("case"))
    expires = datetime.fromtimestamp(claims.expires, timezone.utc).isoformat()
    return answer(200, data={"ok": True, "scope": claims.scope, "case_id": claims.case_id,
                             "expires": expires, "max_size": intake.config.max_size})


@endpoint()
async def stats(request: Request, intake: Intake) -> Response:
    _claims(request, intake).allow_engineer()
    return answer(200, data=intake.stats.snapshot())


@endpoint()
async def bundles(request: Request, intake: Intake) -> Response:
    _claims(request, intake).allow_engineer()
    case = request.query_params.get("case")
    found = await run_in_threadpool(lambda: list(intake.tus.records(case)))
    return answer(200, data={"bundles": found})


@endpoint()
async def bundle(request: Request, intake: Intake) -> Response:
    return await _bundle(request, intake, content=False)


@endpoint()
async def bundle_content(request: Request, intake: Intake) -> Response:
    return await _bundle(request, intake, content=True)


async def _bundle(request: Request, intake: Intake, content: bool) -> Response:
    _claims(request, intake).allow_engineer()
    try:
        bundle_id = normalize(request.path_params["bundle_id"])
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    request.state.bundle_id = bundle_id
    case_id = request.query_params.get("case")
    found = await run_in_threadpool(intake.tus.matches, bundle_id, case_id)
    if not found:
        raise HttpError(404, f"no finished bundle {bundle_id} here"
                             + (f" in case {case_id}" if case_id else "")
                             + ": check the ID in the ticket, or the upload has not completed yet")
    if len(found) > 1:
        cases = sorted(str(r.get("case_id")) for r in found)
        raise HttpError(409, f"bundle ID {bundle_id} exists in cases {', '.join(cases)}: add ?case=ID",
                        extra={"matches": found})
    record = found[0]
    request.state.case = record.get("case_id")
    if not content:
        return answer(200, data=record)
    return await _content(request, intake, bundle_id, record)


async def _content(request: Request, intake: Intake, bundle_id: str, record: dict) -> Response:
    size = record["size"]
    start = _range_start(request, size)
    try:
        reader = await run_in_threadpool(intake.storage.open, record["object"])
    except KeyError:
        raise HttpError(500, f"bundle {bundle_id} is listed but its file is missing") from None
    headers = {"Content-Length": str(size - start), "Accept-Ranges": "bytes",
               "Content-Disposition": f'attachment; filename="{bundle_id}.7z"',
               "X-Content-SHA256": record["sha256"], "Cache-Control": "no-store"}
    if start:
        headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
    if request.method == "HEAD":
        reader.close()
        return Response(b"", 206 if start else 200, headers, media_type="application/x-7z-compressed")

    def chunks():
        with contextlib.closing(reader):
            skip = start
            while skip:
                skipped = len(reader.read(min(READ_CHUNK, skip)))
                if not skipped:
                    return
                skip -= skipped
            sent = start
            while sent < size:
                data = reader.read(min(READ_CHUNK, size - sent))
                if not data:
                    return                  # the client sees a short body, not a bad file
                sent += len(data)
                intake.stats.add("bytes_served", len(data))
                yield data

    return StreamingResponse(iterate_in_threadpool(chunks()), 206 if start else 200, headers,
                             media_type="application/x-7z-compressed")


def _range_start(request: Request, size: int) -> int:
    """The first byte a ``Range: bytes=N-`` asks for (0 without one); 416 past the end.

    Only the open-ended single range resuming clients send is served; any other
    form gets the whole file (RFC 9110 lets a server ignore Range).
    """
    m = _RANGE.match((request.headers.get("range") or "").strip())
    if not m:
        return 0
    start = int(m.group(1))
    if start >= size:
        raise HttpError(416, f"the bundle has {size} bytes; nothing at byte {start}",
                        headers={"Content-Range": f"bytes */{size}"})
    return start


# ----------------------------------------------------------------------------- operations


@endpoint()
async def metrics(request: Request, intake: Intake) -> Response:
    from .metrics import CONTENT_TYPE
    return Response(intake.stats.exposition(), 200, {"Cache-Control": "no-store"}, media_type=CONTENT_TYPE)


@endpoint()
async def healthz(request: Request, intake: Intake) -> Response:
    return answer(200, data={"ok": True})


@endpoint()
async def readyz(request: Request, intake: Intake) -> Response:
    try:
        await asyncio.wait_for(run_in_threadpool(intake.storage.ping), 10)
    except (StorageError, OSError, asyncio.TimeoutError) as exc:
        return answer(503, data={"ok": False, "error": f"storage not reachable: {exc}"})
    return answer(200, data={"ok": True, "storage": intake.storage.description})


@endpoint()
async def not_found(request: Request, intake: Intake) -> Response:
    raise HttpError(404, f"nothing at {request.url.path[:200]}: the tus endpoint is /files/, the API /api/v1/")


async def _default_404(scope, receive, send) -> None:
    """Anything no route matches (any path, control characters included): the JSON 404."""
    response = await not_found(Request(scope, receive))
    await response(scope, receive, send)


ANY = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "PUT"]
READ = ["GET", "HEAD"]


def routes() -> list[Route]:
    return [
        Route("/", root, methods=READ + ["OPTIONS"]),
        Route("/files", files_root, methods=ANY),
        Route("/files/", files_root, methods=ANY),
        Route("/files/{uid}", files_one, methods=ANY),
        Route("/api/v1/recipients", recipients, methods=READ),
        Route("/api/v1/lifecycle", lifecycle, methods=READ),
        Route("/api/v1/token/check", token_check, methods=READ),
        Route("/api/v1/stats", stats, methods=READ),
        Route("/api/v1/bundles", bundles, methods=READ),
        Route("/api/v1/bundles/{bundle_id}", bundle, methods=READ),
        Route("/api/v1/bundles/{bundle_id}/content", bundle_content, methods=READ),
        Route("/metrics", metrics, methods=READ),
        Route("/healthz", healthz, methods=READ),
        Route("/readyz", readyz, methods=READ),
    ]


async def _sweeper(intake: Intake) -> None:
    """Expire abandoned uploads every ``sweep_every`` seconds (every process may; harmless)."""
    while True:
        try:
            await run_in_threadpool(intake.tus.sweep)
        except Exception:  # noqa: BLE001 - keep sweeping; the next run may succeed
            log.exception("expiring abandoned uploads failed")
        await asyncio.sleep(intake.config.sweep_every)


def create_app(config: Optional[IntakeConfig] = None, intake: Optional[Intake] = None):
    """The ASGI app.  Without arguments the configuration comes from the environment
    (``JCDIAG_INTAKE_*``, see :func:`intake.server.config_from_env`)."""
    if not logging.getLogger().handlers:        # a --workers child or a bare uvicorn/gunicorn run
        logs.setup()
        from .server import limit_malloc_arenas
        limit_malloc_arenas()
    intake = intake or Intake(config or config_from_env())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(_sweeper(intake))
        try:
            yield
        finally:
            task.cancel()
            if intake.notifier is not None:
                await run_in_threadpool(intake.notifier.close)

    app = Starlette(routes=routes(), lifespan=lifespan)
    app.router.redirect_slashes = False
    app.router.default = _default_404
    app.state.intake = intake
    return Guard(app, intake)
