"""A tus 1.0.0 client on requests (core, creation, checksum, termination) and the spool around it.

Written for endpoints on bad networks: the bundle goes up in bounded chunks
(8 MiB by default, each read from the file when it is sent, never the whole
file), each with ``Upload-Checksum: sha256``; after any failure the client asks
the server for its offset (HEAD) and resumes from there, so a cut costs at most
the chunk in flight.  Failures are retried with jittered exponential backoff
(honouring ``Retry-After`` on 429/503) until too many fail in a row without
progress or the deadline passes; 401/403/404/410/413/422 are final and say
what to do.

``--server URL`` names a jcdiag intake: tus at ``URL/files/``, API at
``URL/api/v1/``.  When ``URL`` itself answers a tus ``OPTIONS`` it is used as a
plain tus endpoint of any server (tusd, a cloud service) and the intake-only
steps (token pre-flight, published recipients) are skipped.

When is an upload *confirmed* (and its spool entry removed)?

* intake: the final PATCH (or a later HEAD) carries ``Upload-Checksum-Verified:
  sha256 <base64>`` equal to the local file's SHA-256: the server hashed the
  whole assembled file and checked it against the bundle's own header;
* plain tus: the server reports ``Upload-Offset == Upload-Length``.  That is all
  tus can say; when the server has the checksum extension every chunk was
  checked on arrival, so the file is the concatenation of verified chunks.

Security: TLS verification is always on (``ca_bundle`` adds a private CA);
proxies come from the environment as requests does; no redirect is followed
for POST/PATCH/HEAD/DELETE, discovery follows at most three and never from
https to http; response bodies are read up to 64 KiB.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import urljoin, urlsplit

import requests

from . import __version__
from .bundle import BundleError, read_header, sha256_file
from .header import HeaderError, check_record

TUS_VERSION = "1.0.0"
DEFAULT_CHUNK = 8 * 1024 * 1024
DEFAULT_DEADLINE = 3600.0
BODY_LIMIT = 64 * 1024
VERIFIED_HEADER = "Upload-Checksum-Verified"
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
PREFLIGHT_TIMEOUT = (3.0, 5.0)
MAX_DISCOVERY_REDIRECTS = 3
MAX_RESTARTS = 3

Progress = Callable[[int, int], None]            # (bytes confirmed by the server, total)


class UploadError(Exception):
    """An upload step that failed; ``final`` when retrying cannot help."""

    def __init__(self, message: str, final: bool = False, status: Optional[int] = None,
                 retry_after: Optional[float] = None):
        super().__init__(message)
        self.final = final
        self.status = status
        self.retry_after = retry_after


@dataclass
class ServerInfo:
    """What discovery learnt about ``--server``."""

    server: str
    tus_url: str
    api_url: Optional[str] = None                   # None: a plain tus endpoint
    recipients: list[bytes] = field(default_factory=list)
    max_size: Optional[int] = None
    extensions: frozenset = frozenset()
    checksums: frozenset = frozenset()
    ca_bundle: Optional[str] = None

    @property
    def is_intake(self) -> bool:
        return self.api_url is not None


@dataclass
class UploadResult:
    bundle_id: str
    path: str
    status: str                                     # "uploaded" | "failed"
    url: Optional[str] = None
    bytes_sent: int = 0
    bytes_resent: int = 0
    error: Optional[str] = None
    sha256: str = ""
    size: int = 0
    verified: bool = False                          # the server confirmed the whole file's sha256
    final: bool = False                             # the failure will not go away by retrying
    attempts: int = 0
    spooled: Optional[str] = None                   # spool folder still holding it (on failure)
    resends: list[int] = field(default_factory=list)  # bytes sent again, per attempt

    @property
    def ok(self) -> bool:
        return self.status == "uploaded"

    def to_json(self) -> dict[str, Any]:
        return {"bundle_id": self.bundle_id, "path": self.path, "status": self.status, "url": self.url,
                "sha256": self.sha256, "size": self.size, "verified": self.verified,
                "bytes_sent": self.bytes_sent, "bytes_resent": self.bytes_resent,
                "attempts": self.attempts, "error": self.error, "spooled": self.spooled}


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter exponential backoff; gives up after ``max_failures`` in a row without progress."""

    base: float = 0.5
    cap: float = 30.0
    max_failures: int = 6

    def delay(self, failures: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        return random.uniform(0, min(self.cap, self.base * 2 ** (failures - 1)))


# ------------------------------------------------------------------------- HTTP


@dataclass
class _Reply:
    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: bytes

    def message(self) -> str:
        """The server's own words: ``error`` of a JSON body, else the start of the text."""
        try:
            data = json.loads(self.body)
            if isinstance(data, dict) and data.get("error"):
                return str(data["error"])
        except ValueError:
            pass
        text = self.body.decode("utf-8", errors="replace").strip()
        return text[:300]

    def json(self) -> dict:
        try:
            data = json.loads(self.body)
        except ValueError:
            raise UploadError(f"the server answered with something that is not JSON (HTTP {self.status})")
        if not isinstance(data, dict):
            raise UploadError("the server's JSON answer is not an object")
        return data


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _quiet_urllib3() -> None:
    """A response cut inside its headers is retried here; urllib3's traceback would only alarm."""
    noisy = logging.getLogger("urllib3.connection")
    if noisy.level == logging.NOTSET:
        noisy.setLevel(logging.ERROR)


class TusClient:
    """One session's tus requests: each answers a :class:`_Reply` or raises :class:`UploadError`."""

    def __init__(self, token: Optional[str], ca_bundle: Optional[str] = None,
                 session: Optional[requests.Session] = None):
        _quiet_urllib3()
        self.session = session or requests.Session()
        self.session.verify = ca_bundle or True
        self.session.headers.setdefault("User-Agent", f"jcdiag/{__version__}")
        self.token = token

    def request(self, method: str, url: str, headers: Optional[dict] = None, data: bytes | None = None,
                timeout: Any = (CONNECT_TIMEOUT, READ_TIMEOUT), auth: bool = True, tus: bool = True,
                body_limit: int = BODY_LIMIT) -> _Reply:
        all_headers = dict(headers or {})
        if tus:
            all_headers["Tus-Resumable"] = TUS_VERSION
        if auth and self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self.session.request(method, url, headers=all_headers, data=data, timeout=timeout,
                                        allow_redirects=False, stream=True)
        except requests.exceptions.SSLError as exc:
            raise UploadError(f"TLS verification of {_origin(url)} failed ({_short(exc)}); if the "
                              "server uses a private CA, give its certificate as the CA bundle",
                              final=True) from None
        except requests.exceptions.InvalidURL as exc:
            raise UploadError(f"{url} is not a valid URL ({exc})", final=True) from None
        except requests.RequestException as exc:
            raise UploadError(f"cannot reach {_origin(url)}: {_short(exc)}") from None
        try:
            body = resp.raw.read(body_limit, decode_content=True) if method != "HEAD" else b""
        except Exception:  # noqa: BLE001 - a body cut short is no worse than none
            body = b""
        finally:
            resp.close()
        return _Reply(resp.status_code, resp.headers, body or b"")

    def check(self, reply: _Reply, url: str, what: str) -> _Reply:
        """``reply`` if it is a success, else the UploadError that says what to do."""
        status = reply.status
        if 200 <= status < 300:
            return reply
        said = reply.message()
        said = f": {said}" if said else ""
        if 300 <= status < 400:
            target = urljoin(url, reply.headers.get("Location", ""))
            raise UploadError(f"the server redirected {what} to {target}; jcdiag does not follow "
                              "redirects for uploads: give that address as --server", final=True,
                              status=status)
        if status == 401:
            raise UploadError(f"the server refused the token (401){said}. Ask support for a new upload "
                              "token for this case and pass it with --token-file", final=True, status=status)
        if status == 403:
            raise UploadError(f"not allowed (403){said}. Check that --case matches the case the token "
                              "was issued for", final=True, status=status)
        if status in (404, 410):
            raise UploadError(f"{what}: {url} is {'gone' if status == 410 else 'not found'} ({status})"
                              f"{said}", final=True, status=status)
        if status == 413:
            raise UploadError(f"the server refused the size (413){said}", final=True, status=status)
        if status in (429, 503):
            raise UploadError(f"{what}: the server is busy ({status}){said}", status=status,
                              retry_after=_retry_after(reply.headers.get("Retry-After")))
        if status == 409 or status == 460 or status >= 500 or status == 408:
            raise UploadError(f"{what} failed ({status}){said}", status=status)
        raise UploadError(f"{what} was refused ({status}){said}", final=True, status=status)

    # ----------------------------------------------------------------- tus steps

    def options(self, url: str) -> Optional[_Reply]:
        """A successful OPTIONS answer carrying Tus-Resumable, or None if ``url`` is not tus."""
        for _ in range(MAX_DISCOVERY_REDIRECTS + 1):
            reply = self.request("OPTIONS", url, auth=False, tus=False, timeout=PREFLIGHT_TIMEOUT)
            if 300 <= reply.status < 400 and reply.headers.get("Location"):
                target = urljoin(url, reply.headers["Location"])
                if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
                    raise UploadError(f"{url} redirects to {target}: refusing to leave https",
                                      final=True, status=reply.status)
                url = target
                continue
            if 200 <= reply.status < 300 and "Tus-Resumable" in reply.headers:
                reply.headers["X-Jcdiag-Url"] = url
                return reply
            if reply.status >= 500 or reply.status == 429:
                self.check(reply, url, "discovering the upload endpoint")     # retryable
            return None
        raise UploadError(f"too many redirects from {url}", final=True)

    def create(self, tus_url: str, length: int, metadata: dict[str, str]) -> str:
        encoded = ",".join(f"{k} {base64.b64encode(v.encode('utf-8')).decode('ascii')}"
                           for k, v in metadata.items() if v is not None)
        reply = self.request("POST", tus_url, headers={"Upload-Length": str(length),
                                                       "Upload-Metadata": encoded,
                                                       "Content-Length": "0"})
        if reply.status == 409:
            raise AlreadyUploaded(reply.message(), _json_or_empty(reply).get("sha256"))
        self.check(reply, tus_url, "creating the upload")
        location = reply.headers.get("Location")
        if not location:
            raise UploadError("the server's answer to creating the upload has no Location")
        url = urljoin(tus_url, location)
        if urlsplit(tus_url).scheme == "https" and urlsplit(url).scheme != "https":
            raise UploadError(f"the server put the upload at {url}: refusing to leave https", final=True)
        return url

    def head(self, url: str) -> tuple[int, Optional[str]]:
        """The server's offset, and its verified whole-file sha256 (hex) if it has one."""
        reply = self.check(self.request("HEAD", url), url, "asking the upload's offset")
        offset = _int_header(reply, "Upload-Offset")
        return offset, _verified(reply)

    def patch(self, url: str, offset: int, chunk: bytes, checksum: bool, final: bool) -> tuple[int, Optional[str]]:
        headers = {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        if checksum:
            headers["Upload-Checksum"] = "sha256 " + base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        # the last chunk also waits for the server to assemble and verify the whole file
        timeout = (CONNECT_TIMEOUT, READ_TIMEOUT * 5 if final else READ_TIMEOUT)
        reply = self.check(self.request("PATCH", url, headers=headers, data=chunk, timeout=timeout),
                           url, "sending a chunk")
        new_offset = _int_header(reply, "Upload-Offset")
        if not offset <= new_offset <= offset + len(chunk):
            raise UploadError(f"the server answered offset {new_offset} after a chunk at {offset}; "
                              "resuming from its HEAD offset")
        return new_offset, _verified(reply)

    def terminate(self, url: str) -> None:
        """Cancel an unfinished upload (tus termination)."""
        self.check(self.request("DELETE", url), url, "cancelling the upload")

    def api_get(self, url: str, what: str) -> dict:
        reply = self.check(self.request("GET", url, tus=False, timeout=PREFLIGHT_TIMEOUT), url, what)
        return reply.json()


class AlreadyUploaded(UploadError):
    """409 at creation: the server already has a finished bundle with this ID."""

    def __init__(self, message: str, sha256: Optional[str]):
        super().__init__(message, final=True, status=409)
        self.sha256 = sha256


def _json_or_empty(reply: _Reply) -> dict:
    try:
        return reply.json()
    except UploadError:
        return {}


def _int_header(reply: _Reply, name: str) -> int:
    try:
        return int(reply.headers[name])
    except (KeyError, ValueError):
        # also what a response cut inside its headers looks like: ask again
        raise UploadError(f"the server's answer has no valid {name} header") from None


def _verified(reply: _Reply) -> Optional[str]:
    value = reply.headers.get(VERIFIED_HEADER, "")
    name, _, digest = value.strip().partition(" ")
    if name != "sha256":
        return None
    try:
        return base64.b64decode(digest, validate=True).hex()
    except ValueError:
        return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def _short(exc: BaseException) -> str:
    text = str(exc)
    reason = getattr(exc, "args", [None])[0]
    inner = getattr(reason, "reason", None)
    if inner is not None:
        text = str(inner)
    return text if len(text) <= 200 else text[:200] + "…"


# ------------------------------------------------------------------------- discovery


def discover(server: str, ca_bundle: Optional[str] = None, client: Optional[TusClient] = None) -> ServerInfo:
    """What ``server`` is: a plain tus endpoint itself, or a jcdiag intake (tus at ``/files/``)."""
    client = client or TusClient(None, ca_bundle)
    base = server if server.endswith("/") else server + "/"
    if urlsplit(server).scheme not in ("http", "https"):
        raise UploadError(f"--server {server!r} must be an http:// or https:// URL", final=True)
    reply = client.options(server)
    api_url = None
    if reply is None:
        reply = client.options(urljoin(base, "files/"))
        if reply is None:
            raise UploadError(f"{server} is neither a jcdiag intake nor a tus server (no Tus-Resumable "
                              f"answer at {server} or {urljoin(base, 'files/')}); check --server",
                              final=True)
        api_url = urljoin(base, "api/v1/")
    extensions = frozenset(x.strip() for x in reply.headers.get("Tus-Extension", "").split(",") if x.strip())
    if "creation" not in extensions:
        raise UploadError(f"the tus server at {server} does not offer the creation extension; jcdiag "
                          "needs it to start uploads", final=True)
    checksums = frozenset(x.strip() for x in reply.headers.get("Tus-Checksum-Algorithm", "").split(",")
                          if x.strip())
    max_size = reply.headers.get("Tus-Max-Size")
    return ServerInfo(server=server, tus_url=reply.headers["X-Jcdiag-Url"], api_url=api_url,
                      max_size=int(max_size) if max_size and max_size.isdigit() else None,
                      extensions=extensions, checksums=checksums, ca_bundle=ca_bundle)


def preflight(server: str, token: Optional[str], case_id: Optional[str],
              ca_bundle: Optional[str] = None) -> ServerInfo:
    """Before collecting: is the server there, and is the token good for this case? (about a second)

    For a jcdiag intake this also fetches the recipients it publishes
    (``ServerInfo.recipients``: PEM bytes to seal the bundle to).  A plain tus
    server cannot check tokens: only its reachability is known.  Raises
    :class:`UploadError` whose message says what to fix.
    """
    client = TusClient(token, ca_bundle)
    info = discover(server, ca_bundle, client)
    if not info.is_intake:
        return info
    if token:                                      # without one, only the public keys are wanted
        query = "token/check?scope=upload" + (f"&case={requests.utils.quote(case_id, safe='')}"
                                              if case_id else "")
        client.api_get(urljoin(info.api_url, query), "checking the upload token")
    published = client.api_get(urljoin(info.api_url, "recipients"), "fetching the support keys")
    info.recipients = [r["pem"].encode("ascii") for r in published.get("recipients", []) if r.get("pem")]
    return info


# ------------------------------------------------------------------------- sending


StateCallback = Callable[[Optional[str], int], None]


def send(bundle_path: Path | str, server: Union[ServerInfo, str], token: Optional[str],
         case_id: Optional[str] = None, progress: Optional[Progress] = None,
         chunk_size: int = DEFAULT_CHUNK, deadline: float = DEFAULT_DEADLINE, *,
         resume_url: Optional[str] = None, on_state: Optional[StateCallback] = None,
         ca_bundle: Optional[str] = None, session: Optional[requests.Session] = None,
         retry: RetryPolicy = RetryPolicy()) -> UploadResult:
    """Upload one bundle, resuming ``resume_url`` if given; never raises for network trouble.

    ``on_state(url, offset)`` is called whenever the tus URL or the server's offset
    changes (the spool persists it).  Local problems (unreadable bundle) raise
    ``BundleError``/``OSError``; everything on the wire ends in the result.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    path = Path(bundle_path)
    header = read_header(path)
    sha256, size = sha256_file(path)
    header_case = header.get("case_id")
    result = UploadResult(header["bundle_id"], str(path), "failed", sha256=sha256, size=size)
    if case_id and header_case and case_id != header_case:
        result.error, result.final = _case_mismatch(header_case, case_id), True
        return result
    job = _Job(path, result, case_id or header_case,
               server if isinstance(server, ServerInfo) else None,
               server.server if isinstance(server, ServerInfo) else server,
               TusClient(token, ca_bundle or (server.ca_bundle if isinstance(server, ServerInfo) else None),
                         session),
               progress, chunk_size, time.monotonic() + deadline, resume_url, on_state, retry)
    job.run()
    return result


def _case_mismatch(bundle_case: str, asked: str) -> str:
    return (f"the bundle was collected for case {bundle_case}, not {asked}: upload it with "
            f"--case {bundle_case} and that case's token")


class _Job:
    """The retry loop of one upload; its counters end in the :class:`UploadResult`."""

    def __init__(self, path: Path, result: UploadResult, case_id: Optional[str], info: Optional[ServerInfo],
                 server: str, client: TusClient, progress: Optional[Progress], chunk_size: int,
                 deadline: float, resume_url: Optional[str], on_state: Optional[StateCallback],
                 retry: RetryPolicy):
        self.path, self.result, self.case_id = path, result, case_id
        self.info, self.server, self.client = info, server, client
        self.progress, self.chunk_size, self.deadline = progress, chunk_size, deadline
        self.url, self.on_state, self.retry = resume_url, on_state, retry
        self.high_water = 0              # furthest byte ever handed to the network
        self.offset = 0                  # the server's offset, as last heard
        self.restarts = 0                # new uploads made because a tus URL was gone

    def run(self) -> None:
        failures = 0
        result = self.result
        while True:
            result.attempts += 1
            before = self.offset
            resent_before = result.bytes_resent
            try:
                self._attempt()
                result.resends.append(result.bytes_resent - resent_before)
                result.status, result.error, result.url = "uploaded", None, self.url
                return
            except AlreadyUploaded as exc:
                result.resends.append(result.bytes_resent - resent_before)
                if exc.sha256 and exc.sha256 == result.sha256:
                    result.status, result.verified, result.error = "uploaded", True, None
                    return
                result.error, result.final = f"{exc}", True
                return
            except UploadError as exc:
                result.resends.append(result.bytes_resent - resent_before)
                result.error = str(exc)
                if exc.status in (404, 410) and self.url and self.restarts < MAX_RESTARTS:
                    self.restarts += 1             # the upload expired (or its URL was garbled): start anew
                    self._set_url(None, 0)
                    continue
                if exc.final:
                    result.final = True
                    return
                failures = 1 if self.offset > before else failures + 1
                remaining = self.deadline - time.monotonic()
                if failures > self.retry.max_failures or remaining <= 0:
                    result.error = f"gave up after {result.attempts} attempts: {exc}"
                    return
                pause = min(self.retry.delay(failures, exc.retry_after), remaining)
                if exc.retry_after is not None and exc.retry_after > remaining:
                    result.error = f"the server asked to wait {exc.retry_after:.0f}s, past the deadline: {exc}"
                    return
                time.sleep(pause)

    def _set_url(self, url: Optional[str], offset: int) -> None:
        self.url, self.offset = url, offset
        self.result.url = url
        if self.on_state:
            self.on_state(url, offset)

    def _attempt(self) -> None:
        result = self.result
        if self.info is None:
            self.info = discover(self.server, client=self.client)
        info = self.info
        if info.max_size is not None and result.size > info.max_size:
            raise UploadError(f"the bundle is {result.size} bytes, over the server's limit of "
                              f"{info.max_size} (Tus-Max-Size): collect again with a smaller "
                              "--max-bundle-size or --since", final=True, status=413)
        if self.url is None:
            metadata = {"bundle_id": result.bundle_id, "case_id": self.case_id,
                        "filename": self.path.name, "sha256": result.sha256}
            self._set_url(self.client.create(info.tus_url, result.size, metadata), 0)
            offset, verified = 0, None
        else:
            offset, verified = self.client.head(self.url)
            self._set_url(self.url, offset)
        checksum = "checksum" in info.extensions and "sha256" in info.checksums
        with open(self.path, "rb") as fh:
            while offset < result.size:
                fh.seek(offset)
                chunk = fh.read(min(self.chunk_size, result.size - offset))
                if not chunk:
                    raise UploadError(f"{self.path} became shorter while uploading", final=True)
                if offset < self.high_water:
                    result.bytes_resent += min(len(chunk), self.high_water - offset)
                result.bytes_sent += len(chunk)
                self.high_water = max(self.high_water, offset + len(chunk))
                offset, verified = self.client.patch(self.url, offset, chunk, checksum,
                                                     final=offset + len(chunk) == result.size)
                del chunk
                self._set_url(self.url, offset)
                if self.progress:
                    self.progress(offset, result.size)
        self._confirm(verified)

    def _confirm(self, verified: Optional[str]) -> None:
        """Full offset reached: for an intake, wait for its whole-file verification."""
        result = self.result
        if not self.info.is_intake:
            result.verified = False        # plain tus: full offset is all the protocol tells
            return
        if verified is None:
            _, verified = self.client.head(self.url)
        if verified is None:               # finished bytes but not verified yet: ask it to finish
            _, verified = self.client.patch(self.url, result.size, b"", False, final=True)
        if verified is None:
            raise UploadError("the server has every byte but has not confirmed the bundle's sha256 yet")
        if verified != result.sha256:     # a damaged answer, or truly different bytes: ask again
            raise UploadError(f"the server verified sha256 {verified}, but the file's is {result.sha256}")
        result.verified = True


def terminate(url: str, token: Optional[str], ca_bundle: Optional[str] = None) -> None:
    """Cancel an unfinished upload on the server (tus termination); UploadError on failure."""
    TusClient(token, ca_bundle).terminate(url)


# ------------------------------------------------------------------------- fetch


@dataclass
class Fetched:
    bundle_id: str
    path: Path
    sha256: str
    size: int
    case_id: Optional[str]
    already_here: bool = False


def fetch_bundle(server: str, token: str, bundle_id: str, to_dir: Path | str,
                 ca_bundle: Optional[str] = None, progress: Optional[Progress] = None) -> Fetched:
    """Download a finished bundle from an intake by its ID and check its SHA-256.

    Streams into ``.<ID>.7z.partial`` beside the target and renames only when the
    digest matches the intake's record, so a failed fetch never leaves a file that
    looks whole.  Raises :class:`UploadError` (network, refusal) or ``OSError``.
    """
    from .ids import normalize

    try:
        bundle_id = normalize(bundle_id)
    except ValueError as exc:
        raise UploadError(str(exc), final=True) from None
    client = TusClient(token, ca_bundle)
    base = server if server.endswith("/") else server + "/"
    record_url = urljoin(base, f"api/v1/bundles/{bundle_id}")
    try:
        record = check_record(client.api_get(record_url, f"looking up {bundle_id}"), bundle_id)
    except HeaderError as exc:
        raise UploadError(f"the intake's record of {bundle_id} is not usable ({exc}); nothing was "
                          "downloaded", final=True) from None
    expected, size = record["sha256"], record["size"]
    to_dir = Path(to_dir)
    to_dir.mkdir(parents=True, exist_ok=True)
    target = to_dir / f"{bundle_id}.7z"
    if target.exists():
        if sha256_file(target)[0] == expected:
            return Fetched(bundle_id, target, expected, size, record.get("case_id"), already_here=True)
        raise UploadError(f"{target} exists and differs from the bundle on the server; move it away "
                          "or choose another --to", final=True)
    partial = to_dir / f".{bundle_id}.7z.partial"
    digest, received = hashlib.sha256(), 0
    try:
        resp = client.session.get(record_url + "/content", headers={"Authorization": f"Bearer {token}"},
                                  stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                                  allow_redirects=False)
    except requests.RequestException as exc:
        raise UploadError(f"cannot reach {_origin(record_url)}: {_short(exc)}") from None
    with resp:
        if resp.status_code != 200:
            body = resp.raw.read(BODY_LIMIT, decode_content=True) or b""
            client.check(_Reply(resp.status_code, resp.headers, body), record_url, f"downloading {bundle_id}")
        try:
            with open(partial, "wb") as out:
                for data in resp.iter_content(1024 * 1024):
                    out.write(data)
                    digest.update(data)
                    received += len(data)
                    if progress:
                        progress(received, size)
                out.flush()
                os.fsync(out.fileno())
        except requests.RequestException as exc:
            partial.unlink(missing_ok=True)
            raise UploadError(f"the download of {bundle_id} broke off after {received} bytes "
                              f"({_short(exc)}); run fetch again") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    if digest.hexdigest() != expected or received != size:
        partial.unlink(missing_ok=True)
        raise UploadError(f"the downloaded {bundle_id} ({received} bytes, sha256 {digest.hexdigest()}) "
                          f"does not match the intake's record ({size} bytes, sha256 {expected}); "
                          "nothing was kept: run fetch again")
    try:
        header_id = read_header(partial)["bundle_id"]
    except BundleError as exc:
        partial.unlink(missing_ok=True)
        raise UploadError(f"the downloaded {bundle_id} is not a usable bundle ({exc}); nothing was kept",
                          final=True) from None
    if header_id != bundle_id:
        partial.unlink(missing_ok=True)
        raise UploadError(f"the intake sent bundle {header_id} for {bundle_id}; nothing was kept", final=True)
    os.replace(partial, target)
    return Fetched(bundle_id, target, expected, size, record.get("case_id"))


# ------------------------------------------------------------------------- spool integration


def deliver(bundle_path: Path | str, server: Union[ServerInfo, str], token: Optional[str],
            case_id: Optional[str] = None, *, spool=None, progress: Optional[Progress] = None,
            ca_bundle: Optional[str] = None, chunk_size: int = DEFAULT_CHUNK,
            deadline: float = DEFAULT_DEADLINE, session: Optional[requests.Session] = None,
            retry: RetryPolicy = RetryPolicy()) -> UploadResult:
    """Queue a bundle in the spool, then send it; what cannot be confirmed stays queued.

    The entry is made *before* the first byte goes out, so a run killed
    mid-transfer leaves it (with its tus URL and offset) for the next run.
    """
    from .spool import Spool

    header = read_header(bundle_path)
    if case_id and header.get("case_id") and case_id != header["case_id"]:
        sha256, size = sha256_file(bundle_path)
        return UploadResult(header["bundle_id"], str(bundle_path), "failed", sha256=sha256, size=size,
                            final=True, error=_case_mismatch(header["case_id"], case_id))
    spool = spool or Spool()
    server_url = server.server if isinstance(server, ServerInfo) else server
    entry = spool.add(bundle_path, server=server_url, case_id=case_id, token=token,
                      ca_bundle=ca_bundle or (server.ca_bundle if isinstance(server, ServerInfo) else None))
    result = send_entry(entry, server_info=server if isinstance(server, ServerInfo) else None,
                        progress=progress, chunk_size=chunk_size, deadline=deadline, session=session,
                        retry=retry)
    result.path = str(bundle_path)
    return result


def send_entry(entry, token: Optional[str] = None, server: Optional[str] = None,
               server_info: Optional[ServerInfo] = None, progress: Optional[Progress] = None,
               chunk_size: int = DEFAULT_CHUNK, deadline: float = DEFAULT_DEADLINE,
               session: Optional[requests.Session] = None,
               retry: RetryPolicy = RetryPolicy()) -> UploadResult:
    """Send one spool entry under its lock; remove it when confirmed, else record the failure.

    ``token``/``server`` override what the entry stored (a renewed token, a moved
    server).  Another run sending the same entry gives a failed result saying so.
    """
    from .spool import SpoolBusy, SpoolError

    try:
        with entry.locked():
            state = entry.load()
            if token and token != state.token or server and server != state.server:
                state = entry.update(token=token or state.token, server=server or state.server,
                                     **({"tus_url": None, "offset": 0} if server and server != state.server
                                        else {}))
            bundle = entry.dir / state.filename
            if not state.server:
                return UploadResult(state.bundle_id, str(bundle), "failed", sha256=state.sha256,
                                    size=state.size, spooled=str(entry.dir), final=True,
                                    error="no server is known for this spooled bundle: give --server URL")

            def remember(url: Optional[str], offset: int) -> None:
                entry.update(tus_url=url, offset=offset)

            info = server_info if server_info is not None and server_info.server == state.server else None
            result = send(bundle, info or state.server, state.token, state.case_id, progress, chunk_size,
                          deadline, resume_url=state.tus_url, on_state=remember,
                          ca_bundle=state.ca_bundle, session=session, retry=retry)
            if result.ok:
                entry.remove()
            else:
                current = entry.load()
                entry.update(attempts=current.attempts + 1, last_error=result.error)
                result.spooled = str(entry.dir)
            return result
    except SpoolBusy as exc:
        return UploadResult(entry.bundle_id, str(entry.dir), "failed", error=str(exc),
                            spooled=str(entry.dir))
    except SpoolError as exc:
        return UploadResult(entry.bundle_id, str(entry.dir), "failed", error=str(exc))


def send_pending(spool=None, token: Optional[str] = None, server: Optional[str] = None,
                 progress_for: Optional[Callable[[str], Optional[Progress]]] = None,
                 chunk_size: int = DEFAULT_CHUNK, deadline: float = DEFAULT_DEADLINE,
                 session: Optional[requests.Session] = None, retry: RetryPolicy = RetryPolicy(),
                 skip: frozenset = frozenset()) -> list[UploadResult]:
    """Send every queued bundle (but those in ``skip``), oldest first; caps are applied first."""
    from .spool import Spool

    spool = spool or Spool()
    spool.enforce_caps()
    results = []
    for entry in spool.entries():
        if entry.bundle_id in skip:
            continue
        progress = progress_for(entry.bundle_id) if progress_for else None
        results.append(send_entry(entry, token=token, server=server, progress=progress,
                                  chunk_size=chunk_size, deadline=deadline, session=session, retry=retry))
    return results


__all__ = ["AlreadyUploaded", "DEFAULT_CHUNK", "DEFAULT_DEADLINE", "RetryPolicy", "ServerInfo",
           "TusClient", "UploadError", "UploadResult", "deliver", "discover", "fetch_bundle", "preflight", "send",
           "send_entry", "send_pending", "terminate"]
