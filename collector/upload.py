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
import re
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
                 retry_after: Optional[float] = None, unreachable: bool = False):
        super().__init__(message)
        self.final = final
        self.status = status
        self.retry_after = retry_after
        self.unreachable = unreachable      # no answer at all: refused, DNS, timeout, TLS


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
    status: str                                     # "uploaded" | "failed" | "held" | "deferred"
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
    http_status: Optional[int] = None               # the server's answer that ended a failed upload
    action: Optional[str] = None                    # for a held entry: what the admin does about it
    busy: bool = False                              # another run is sending it right now

    @property
    def ok(self) -> bool:
        return self.status == "uploaded"

    @property
    def sendable_failure(self) -> bool:
        """A bundle that could have gone now and did not (what makes ``upload`` exit 4)."""
        return self.status == "failed" and not self.busy

    def to_json(self) -> dict[str, Any]:
        data = {"bundle_id": self.bundle_id, "path": self.path, "status": self.status, "url": self.url,
                "sha256": self.sha256, "size": self.size, "verified": self.verified,
                "bytes_sent": self.bytes_sent, "bytes_resent": self.bytes_resent,
                "attempts": self.attempts, "error": self.error, "spooled": self.spooled,
                "http_status": self.http_status}
        if self.status == "held":
            data["action"] = self.action
        return data


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
                 session: Optional[requests.Session] = None, auth_origin: Optional[str] = None,
                 engineer: bool = False):
        """``auth_origin``: the only origin (``--server``'s) that ever receives the token;
        jcdiag always sets it, so a Location naming another host never gets it.
        ``engineer``: the token is an engineer's (fetch, bundles): refusals say so."""
        self.engineer = engineer
        _quiet_urllib3()
        self.session = session or requests.Session()
        # passed on every request too: requests lets REQUESTS_CA_BUNDLE override a session's verify
        self.verify = self.session.verify = ca_bundle or True
        self.session.headers.setdefault("User-Agent", f"jcdiag/{__version__}")
        self.token = token
        self.auth_origin = same_origin_key(auth_origin) if auth_origin else None

    def authorizes(self, url: str) -> bool:
        """Does ``url`` get the token? Only with one, and only on ``--server``'s origin."""
        return bool(self.token) and (self.auth_origin is None or same_origin_key(url) == self.auth_origin)

    def request(self, method: str, url: str, headers: Optional[dict] = None, data: bytes | None = None,
                timeout: Any = (CONNECT_TIMEOUT, READ_TIMEOUT), auth: bool = True, tus: bool = True,
                body_limit: int = BODY_LIMIT) -> _Reply:
        all_headers = dict(headers or {})
        if tus:
            all_headers["Tus-Resumable"] = TUS_VERSION
        if auth and self.authorizes(url):
            all_headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self.session.request(method, url, headers=all_headers, data=data, timeout=timeout,
                                        allow_redirects=False, stream=True, verify=self.verify)
        except requests.exceptions.SSLError as exc:
            raise UploadError(f"TLS verification of {_origin(url)} failed ({_short(exc)}); if the "
                              "server uses a private CA, give its certificate as the CA bundle",
                              final=True, unreachable=True) from None
        except requests.exceptions.InvalidURL as exc:
            raise UploadError(f"{url} is not a valid URL ({exc})", final=True) from None
        except requests.RequestException as exc:
            raise UploadError(f"cannot reach {_origin(url)}: {_short(exc)}", unreachable=True) from None
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
        if status == 403 and _json_or_empty(reply).get("already_uploaded") is True:
            # the intake answers a finished bundle ID with 403 (tus clients retry 409, not 403)
            raise AlreadyUploaded(reply.message(), _json_or_empty(reply).get("sha256"))
        if status in (401, 403):
            raise UploadError(f"{'the server refused the token' if status == 401 else 'not allowed'} "
                              f"({status}){said}{self._token_hint(status, said)}", final=True, status=status)
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
        """A new upload's URL (creation, no body)."""
        return self.create_with(tus_url, length, metadata)[0]

    def create_with(self, tus_url: str, length: int, metadata: dict[str, str], first: bytes = b"",
                    checksum: bool = False) -> tuple[str, int]:
        """A new upload's URL and the server's offset; ``first`` rides on the POST
        (creation-with-upload) when given, so a small bundle takes one request."""
        encoded = ",".join(f"{k} {base64.b64encode(v.encode('utf-8')).decode('ascii')}"
                           for k, v in metadata.items() if v is not None)
        headers = {"Upload-Length": str(length), "Upload-Metadata": encoded}
        if first:
            headers["Content-Type"] = "application/offset+octet-stream"
            if checksum:
                headers["Upload-Checksum"] = "sha256 " + base64.b64encode(hashlib.sha256(first).digest()).decode()
        else:
            headers["Content-Length"] = "0"
        reply = self.request("POST", tus_url, headers=headers, data=first or None,
                             timeout=(CONNECT_TIMEOUT, READ_TIMEOUT * 5 if len(first) == length else READ_TIMEOUT))
        if reply.status == 409:           # older intakes; now 403 + already_uploaded (see check)
            raise AlreadyUploaded(reply.message(), _json_or_empty(reply).get("sha256"))
        self.check(reply, tus_url, "creating the upload")
        location = reply.headers.get("Location")
        if not location:
            raise UploadError("the server's answer to creating the upload has no Location")
        url = urljoin(tus_url, location)
        if urlsplit(tus_url).scheme == "https" and urlsplit(url).scheme != "https":
            raise UploadError(f"the server put the upload at {url}: refusing to leave https", final=True)
        offset = 0
        if first:
            try:
                offset = int(reply.headers.get("Upload-Offset", "0"))
            except ValueError:
                offset = 0
            if not 0 <= offset <= len(first):
                offset = 0
        return url, offset

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

    def _token_hint(self, status: int, said: str) -> str:
        """What to do about a refused token, once: only how to pass it when the server already
        said what to ask for, and only flags the command has (``--token-file``; ``--case`` for uploads)."""
        if "new token" in said.lower() or "intake token" in said.lower():
            return ". Pass it with --token-file"          # the server said what to ask for: not twice
        if self.engineer:
            return (". Ask for an engineer token (jcdiag intake token --engineer) and pass it with "
                    "--token-file")
        if status == 401:
            return ". Ask support for a new upload token for this case and pass it with --token-file"
        return ". Check that --case matches the case the token was issued for"

    def api_get(self, url: str, what: str) -> dict:
        reply = self.check(self.request("GET", url, tus=False, timeout=PREFLIGHT_TIMEOUT), url, what)
        return reply.json()


class AlreadyUploaded(UploadError):
    """At creation: the server already has a finished bundle with this ID (409, or 403 with
    ``already_uploaded``)."""

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


def same_origin_key(url: str) -> tuple:
    """(scheme, host, port) with default ports filled in: what "the same origin" compares."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
        return (parts.scheme.lower(), (parts.hostname or "").lower(), port)
    except ValueError:
        return ("", url, None)


def token_case(token: Optional[str]) -> Optional[str]:
    """The case an upload token names, read (not verified) from its JWT claims; None if opaque.

    Only routes a token given to ``upload --pending`` to the spooled bundles of its
    case; the server still verifies every token it receives.
    """
    if not token or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))[:4096])
    except (ValueError, TypeError):
        return None
    case = claims.get("case") if isinstance(claims, dict) else None
    return case if isinstance(case, str) and case.isprintable() and 0 < len(case) <= 128 else None


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
    client = TusClient(token, ca_bundle, auth_origin=server)
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
         retry: RetryPolicy = RetryPolicy(), digest: Optional[tuple[str, int]] = None) -> UploadResult:
    """Upload one bundle, resuming ``resume_url`` if given; never raises for network trouble.

    ``on_state(url, offset)`` is called whenever the tus URL or the server's offset
    changes (the spool persists it).  ``digest`` is the file's (sha256, size) when
    already known (the spool checked it).  Local problems (unreadable bundle) raise
    ``BundleError``/``OSError``; everything on the wire ends in the result.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    path = Path(bundle_path)
    header = read_header(path)
    sha256, size = digest or sha256_file(path)
    header_case = header.get("case_id")
    result = UploadResult(header["bundle_id"], str(path), "failed", sha256=sha256, size=size)
    if case_id and header_case and case_id != header_case:
        result.error, result.final = _case_mismatch(header_case, case_id), True
        return result
    job = _Job(path, result, case_id or header_case,
               server if isinstance(server, ServerInfo) else None,
               server.server if isinstance(server, ServerInfo) else server,
               TusClient(token, ca_bundle or (server.ca_bundle if isinstance(server, ServerInfo) else None),
                         session, auth_origin=server.server if isinstance(server, ServerInfo) else server),
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
                result.error, result.final, result.http_status = f"{exc}", True, exc.status
                return
            except UploadError as exc:
                result.resends.append(result.bytes_resent - resent_before)
                result.error, result.http_status = str(exc), exc.status
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
        checksum = "checksum" in info.extensions and "sha256" in info.checksums
        with open(self.path, "rb") as fh:
            verified = None
            if self.url is None:
                # filename and filetype as tus-js-client and Uppy send them: some servers
                # (tuspyserver) refuse a HEAD on an upload created without a filetype
                metadata = {"bundle_id": result.bundle_id, "case_id": self.case_id,
                            "filename": self.path.name, "filetype": "application/x-7z-compressed",
                            "sha256": result.sha256}
                # creation-with-upload: the first chunk rides on the POST
                first = (self._read(fh, 0) if "creation-with-upload" in info.extensions and result.size
                         else b"")
                url, offset = self.client.create_with(info.tus_url, result.size, metadata, first, checksum)
                self._set_url(url, offset)
                if self.progress and offset:
                    self.progress(offset, result.size)
            else:
                offset, verified = self.client.head(self.url)
                self._set_url(self.url, offset)
            while offset < result.size:
                chunk = self._read(fh, offset)
                offset, verified = self.client.patch(self.url, offset, chunk, checksum,
                                                     final=offset + len(chunk) == result.size)
                del chunk
                self._set_url(self.url, offset)
                if self.progress:
                    self.progress(offset, result.size)
        self._confirm(verified)

    def _read(self, fh, offset: int) -> bytes:
        """The chunk at ``offset``, counted as sent (and as re-sent below the high-water mark)."""
        result = self.result
        fh.seek(offset)
        chunk = fh.read(min(self.chunk_size, result.size - offset))
        if not chunk:
            raise UploadError(f"{self.path} became shorter while uploading", final=True)
        if offset < self.high_water:
            result.bytes_resent += min(len(chunk), self.high_water - offset)
        result.bytes_sent += len(chunk)
        self.high_water = max(self.high_water, offset + len(chunk))
        return chunk

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


FETCH_ATTEMPTS = 8
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")      # also names the partial file: hex only, never a path


@dataclass
class Fetched:
    bundle_id: str
    path: Path
    sha256: str
    size: int
    case_id: Optional[str]
    already_here: bool = False
    resumed_from: int = 0                      # bytes kept from an earlier, cut download
    attempts: int = 1


def _bundle_record(client: TusClient, base: str, bundle_id: str, case_id: Optional[str]) -> dict:
    """The intake's record of ``bundle_id`` (in ``case_id``); says which cases when several match."""
    query = f"?case={requests.utils.quote(case_id, safe='')}" if case_id else ""
    url = urljoin(base, f"api/v1/bundles/{bundle_id}") + query
    reply = client.request("GET", url, tus=False, timeout=PREFLIGHT_TIMEOUT)
    if reply.status == 409:
        data = _json_or_empty(reply)
        cases = [str(m.get("case_id")) for m in data.get("matches", []) if isinstance(m, dict)][:20]
        raise UploadError(f"bundle ID {bundle_id} exists in several cases ({', '.join(cases) or '?'}): "
                          "give --case ID to choose one", final=True, status=409)
    try:
        record = client.check(reply, url, f"looking up {bundle_id}").json()
    except UploadError as exc:
        if exc.status is None:                  # an answer, but not a record: retrying will not help
            raise UploadError(f"looking up {bundle_id} at {_origin(url)}: {exc}", final=True) from None
        raise
    try:
        record = check_record(record, bundle_id)      # the one validator (collector/header.py)
    except HeaderError as exc:
        raise UploadError(f"the intake's record of {bundle_id} is not usable ({exc}); nothing was "
                          "downloaded", final=True) from None
    if case_id and record.get("case_id") != case_id:
        raise UploadError(f"the intake answered a record of case {record.get('case_id')} when case "
                          f"{case_id} was asked", final=True)
    return record


def fetch_bundle(server: str, token: str, bundle_id: str, to_dir: Path | str,
                 ca_bundle: Optional[str] = None, progress: Optional[Progress] = None,
                 case_id: Optional[str] = None, retry: RetryPolicy = RetryPolicy(),
                 session: Optional[requests.Session] = None) -> Fetched:
    """Download a finished bundle from an intake by its ID and check its SHA-256.

    Streams into ``.<ID>.<sha256 prefix>.partial`` beside the target.  A cut keeps
    the partial file and the next try (in this run, or the next ``fetch``) asks
    only for the rest with an HTTP ``Range``; the file is renamed into place only
    when the whole digest matches the intake's record, so a failed fetch never
    leaves a file that looks whole.  ``case_id`` picks among bundles with the same
    ID in different cases.  Raises :class:`UploadError` (network, refusal) or ``OSError``.
    """
    from .ids import normalize

    try:
        bundle_id = normalize(bundle_id)
    except ValueError as exc:
        raise UploadError(str(exc), final=True) from None
    client = TusClient(token, ca_bundle, session, auth_origin=server, engineer=True)
    base = server if server.endswith("/") else server + "/"
    record = _retrying(lambda: _bundle_record(client, base, bundle_id, case_id), lambda: 0, retry,
                       lambda exc: str(exc))
    expected, size = record["sha256"], record["size"]
    to_dir = Path(to_dir)
    to_dir.mkdir(parents=True, exist_ok=True)
    target = to_dir / f"{bundle_id}.7z"
    if target.exists():
        if sha256_file(target)[0] == expected:
            return Fetched(bundle_id, target, expected, size, record.get("case_id"), already_here=True)
        raise UploadError(f"{target} exists and differs from the bundle on the server; move it away "
                          "or choose another --to", final=True)
    partial = to_dir / f".{bundle_id}.{expected[:16]}.partial"
    content_url = urljoin(base, f"api/v1/bundles/{bundle_id}/content") + (
        f"?case={requests.utils.quote(record.get('case_id') or '', safe='')}" if record.get("case_id") else "")
    if partial.is_symlink() or partial.exists() and not partial.is_file():
        raise UploadError(f"{partial} is not a regular file; remove it", final=True)
    resumed_from = _partial_size(partial)
    attempts = _retrying(lambda: _download(client, content_url, partial, size, bundle_id, progress),
                         lambda: _partial_size(partial), retry,
                         lambda exc: (f"{exc}; {_partial_size(partial)} of {size} bytes are kept in "
                                      f"{partial}: run fetch again to resume"), count=True)
    digest, received = sha256_file(partial)
    if digest != expected or received != size:
        partial.unlink(missing_ok=True)
        raise UploadError(f"the downloaded {bundle_id} ({received} bytes, sha256 {digest}) "
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
    return Fetched(bundle_id, target, expected, size, record.get("case_id"), resumed_from=resumed_from,
                   attempts=attempts)


def list_bundles(server: str, token: Optional[str], case_id: Optional[str] = None,
                 ca_bundle: Optional[str] = None, session: Optional[requests.Session] = None) -> list[dict]:
    """``jcdiag bundles``: the intake's finished bundles of ``case_id`` (every case when None),
    newest upload first.  Each record passes the shared validator before it names anything;
    a record that does not is left out.  Raises :class:`UploadError`."""
    client = TusClient(token, ca_bundle, session, auth_origin=server, engineer=True)
    base = server if server.endswith("/") else server + "/"
    query = f"?case={requests.utils.quote(case_id, safe='')}" if case_id else ""
    data = client.api_get(urljoin(base, "api/v1/bundles") + query, "listing the bundles")
    items = data.get("bundles") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UploadError(f"{_origin(base)} did not answer a list of bundles: is it a jcdiag intake?",
                          final=True)
    listed = [r for r in map(_listed, items[:100_000]) if r is not None]
    return sorted(listed, key=lambda r: r["uploaded_at"], reverse=True)


def _listed(record: Any) -> Optional[dict]:
    """The fields ``bundles`` shows of one record, checked, or None for a record that is not usable."""
    from .ids import normalize

    try:
        bundle_id = normalize(record["bundle_id"])
        record = check_record(record, bundle_id)
    except (ValueError, TypeError, KeyError, AttributeError, HeaderError):
        return None
    uploaded = record.get("uploaded_at")
    return {"bundle_id": bundle_id, "case_id": record.get("case_id"), "size": record["size"],
            "sha256": record["sha256"],
            "uploaded_at": uploaded if isinstance(uploaded, str) and len(uploaded) <= 40 else ""}


def _retrying(step: Callable[[], Any], progress: Callable[[], int], retry: RetryPolicy,
              give_up: Callable[[UploadError], str], count: bool = False) -> Any:
    """Run ``step`` until it works, backing off after failures that made no progress.

    Returns what ``step`` returns (or, with ``count``, how many tries it took);
    a final error, or too many failures in a row, raises with ``give_up``'s words.
    """
    failures = attempts = 0
    while True:
        attempts += 1
        before = progress()
        try:
            value = step()
            return attempts if count else value
        except UploadError as exc:
            if exc.final:
                raise
            failures = 1 if progress() > before else failures + 1
            if failures > retry.max_failures or attempts >= FETCH_ATTEMPTS * 4:
                raise UploadError(give_up(exc)) from None
            time.sleep(retry.delay(failures, exc.retry_after))


def _partial_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _download(client: TusClient, url: str, partial: Path, size: int, bundle_id: str,
              progress: Optional[Progress]) -> None:
    """Append the rest of the bundle to ``partial`` (all of it when the server ignores Range)."""
    have = _partial_size(partial)
    if have > size:
        partial.unlink()
        have = 0
    if have == size:
        return
    headers = {"Range": f"bytes={have}-"} if have else {}
    if client.authorizes(url):
        headers["Authorization"] = f"Bearer {client.token}"
    try:
        resp = client.session.get(url, headers=headers, stream=True, allow_redirects=False,
                                  timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), verify=client.verify)
    except requests.RequestException as exc:
        raise UploadError(f"cannot reach {_origin(url)}: {_short(exc)}", unreachable=True) from None
    with resp:
        if resp.status_code == 416:                  # our partial is not a prefix it knows: start over
            partial.unlink(missing_ok=True)
            raise UploadError(f"the server refused to resume {bundle_id}; starting over")
        if resp.status_code not in (200, 206):
            body = resp.raw.read(BODY_LIMIT, decode_content=True) or b""
            client.check(_Reply(resp.status_code, resp.headers, body), url, f"downloading {bundle_id}")
            raise UploadError(f"downloading {bundle_id}: unexpected answer {resp.status_code}")
        if resp.status_code == 206:
            start = _content_range_start(resp.headers.get("Content-Range", ""))
            if start != have:
                raise UploadError(f"the server resumed {bundle_id} at byte {start}, not {have}")
            mode = "ab"
        else:
            have, mode = 0, "wb"                     # a whole answer: replace what was kept
        received = have
        try:
            with open(partial, mode) as out:
                for data in resp.iter_content(1024 * 1024):
                    if received + len(data) > size:
                        raise UploadError(f"the server sent more than the {size} bytes of {bundle_id}",
                                          final=True)
                    out.write(data)
                    received += len(data)
                    if progress:
                        progress(received, size)
                out.flush()
                os.fsync(out.fileno())
        except requests.RequestException as exc:
            raise UploadError(f"the download of {bundle_id} broke off after {received} bytes "
                              f"({_short(exc)})", unreachable=True) from None
    if received < size:
        raise UploadError(f"the download of {bundle_id} broke off after {received} of {size} bytes")


def _content_range_start(value: str) -> Optional[int]:
    unit, _, rest = value.strip().partition(" ")
    first = rest.split("-", 1)[0]
    return int(first) if unit == "bytes" and first.isdigit() else None


# ------------------------------------------------------------------------- spool integration


@dataclass(frozen=True)
class Offer:
    """A token and server given to ``upload --pending`` or ``spool retry``.

    Each spooled entry keeps the server and token it was spooled with; an offered
    token applies only to entries of its own case (``case_id``: from ``--case`` or
    the token's own claim) or to entries that have no token, and releases that
    case's entries held for an authorization refusal.  An offered server only fills
    in entries that have none.
    """

    token: Optional[str] = None
    case_id: Optional[str] = None
    server: Optional[str] = None

    def token_applies(self, state) -> bool:
        if not self.token:
            return False
        return state.token is None or (self.case_id is not None and state.case_id == self.case_id)


def deliver(bundle_path: Path | str, server: Union[ServerInfo, str], token: Optional[str],
            case_id: Optional[str] = None, *, spool=None, progress: Optional[Progress] = None,
            ca_bundle: Optional[str] = None, chunk_size: int = DEFAULT_CHUNK,
            deadline: float = DEFAULT_DEADLINE, session: Optional[requests.Session] = None,
            retry: RetryPolicy = RetryPolicy(), send_now: bool = True) -> UploadResult:
    """Queue a bundle in the spool, then send it; what cannot be confirmed stays queued.

    The entry is made *before* the first byte goes out, so a run killed
    mid-transfer leaves it (with its tus URL and offset) for the next run.  When
    the spool cannot take it (a full disk), the bundle is still sent straight
    from where it is; the result then says it was not spooled.  ``send_now=False``
    only queues it (the server is known to be unreachable).
    """
    from .spool import Spool, SpoolBusy, SpoolError

    header = read_header(bundle_path)
    if case_id and header.get("case_id") and case_id != header["case_id"]:
        sha256, size = sha256_file(bundle_path)
        return UploadResult(header["bundle_id"], str(bundle_path), "failed", sha256=sha256, size=size,
                            final=True, error=_case_mismatch(header["case_id"], case_id))
    spool = spool or Spool()
    server_url = server.server if isinstance(server, ServerInfo) else server
    ca = ca_bundle or (server.ca_bundle if isinstance(server, ServerInfo) else None)
    try:
        entry = spool.add(bundle_path, server=server_url, case_id=case_id, token=token, ca_bundle=ca)
    except SpoolBusy as exc:                  # another run is sending this very bundle: leave it to it
        sha256, size = sha256_file(bundle_path)
        return UploadResult(header["bundle_id"], str(bundle_path), "failed", sha256=sha256, size=size,
                            error=str(exc), spooled=str(spool.root / header["bundle_id"]), busy=True)
    except (SpoolError, OSError) as exc:
        why = (f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename
               else (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)))
        note = f"the spool cannot keep it ({why}); the bundle stays at {bundle_path}"
        if not send_now:
            sha256, size = sha256_file(bundle_path)
            return UploadResult(header["bundle_id"], str(bundle_path), "failed", sha256=sha256, size=size,
                                error=note)
        result = send(bundle_path, server, token, case_id, progress, chunk_size, deadline,
                      ca_bundle=ca, session=session, retry=retry)
        if not result.ok:
            result.error = f"{result.error}; {note}: upload it later with jcdiag upload {bundle_path}"
        return result
    if not send_now:
        state = entry.load()
        return UploadResult(state.bundle_id, str(bundle_path), "failed", sha256=state.sha256,
                            size=state.size, spooled=str(entry.dir), error="not sent: the server is unreachable")
    result = send_entry(entry, server_info=server if isinstance(server, ServerInfo) else None,
                        progress=progress, chunk_size=chunk_size, deadline=deadline, session=session,
                        retry=retry)
    result.path = str(bundle_path)
    return result


def send_entry(entry, offer: Offer = Offer(), server_info: Optional[ServerInfo] = None,
               progress: Optional[Progress] = None, chunk_size: int = DEFAULT_CHUNK,
               deadline: float = DEFAULT_DEADLINE, session: Optional[requests.Session] = None,
               retry: RetryPolicy = RetryPolicy(), *, release: bool = False,
               due_only: bool = False) -> UploadResult:
    """Send one spool entry under its lock: the spool's state machine, one step.

    Removes the entry when the server confirms it; holds it (with the reason) on a
    permanent refusal or a missing, changed or unreadable bundle; otherwise counts
    the attempt and backs off.  A held entry is not sent unless ``release`` (``spool
    retry``) or the offered token releases it.  ``due_only`` skips an entry whose
    backoff has not run out (scheduled runs).  Never raises for one entry's trouble.
    """
    from .bundle import BundleError
    from .spool import AUTH_STATUSES, HELD, HOLD_STATUSES, DamagedState, SpoolBusy, SpoolError, held_action

    def held(state, reason: str, status: Optional[int] = None) -> UploadResult:
        return UploadResult(entry.bundle_id, str(entry.dir / state.filename) if state else str(entry.dir),
                            "held", error=reason, sha256=state.sha256 if state else "",
                            size=state.size if state else 0, spooled=str(entry.dir), final=True,
                            http_status=status, action=held_action(entry.bundle_id, state))

    try:
        with entry.locked():
            try:
                state = entry.load()
            except DamagedState as exc:
                return held(None, str(exc))
            if offer.token_applies(state) and offer.token != state.token:
                state = entry.update(token=offer.token)
                if state.status == HELD and state.held_status in AUTH_STATUSES:
                    state = entry.release()           # a token for its case: try it again
            if offer.server and not state.server:
                state = entry.update(server=offer.server)
            if release and state.status == HELD:
                state = entry.release()
            if state.status == HELD:
                return held(state, state.held_reason or state.last_error or "held", state.held_status)
            if due_only and state.next_attempt_ts > time.time():
                return UploadResult(state.bundle_id, str(entry.dir / state.filename), "deferred",
                                    sha256=state.sha256, size=state.size, spooled=str(entry.dir),
                                    error=state.last_error)
            problem = entry.check_bundle(state)
            bundle = entry.dir / state.filename
            if not problem and sha256_file(bundle)[0] != state.sha256:
                problem = f"the bundle file {bundle} changed since it was spooled (its sha256 differs)"
            if problem:
                entry.hold(problem)
                return held(state, problem)
            if not state.server:
                return held(state, "no server is known for this spooled bundle: give --server URL to "
                                   "jcdiag upload --pending")

            def remember(url: Optional[str], offset: int) -> None:
                try:
                    entry.update(tus_url=url, offset=offset)
                except OSError:
                    pass        # a full disk: the server's own offset (HEAD) is the truth anyway

            info = server_info if server_info is not None and server_info.server == state.server else None
            try:
                result = send(bundle, info or state.server, state.token, state.case_id, progress, chunk_size,
                              deadline, resume_url=state.tus_url, on_state=remember,
                              ca_bundle=state.ca_bundle, session=session, retry=retry,
                              digest=(state.sha256, state.size))
            except (BundleError, OSError) as exc:
                reason = f"the bundle file cannot be read ({exc})"
                entry.hold(reason)
                return held(state, reason)
            if result.ok:
                entry.remove()
                return result
            result.spooled = str(entry.dir)
            if result.final and (result.http_status in HOLD_STATUSES or result.http_status is None
                                 and "collected for case" in (result.error or "")):
                state = entry.hold(result.error or "refused", result.http_status)
                result.status, result.action = "held", held_action(entry.bundle_id, state)
            else:
                entry.failed_attempt(result.error or "failed")
            return result
    except SpoolBusy as exc:
        return UploadResult(entry.bundle_id, str(entry.dir), "failed", error=str(exc),
                            spooled=str(entry.dir), busy=True)
    except (SpoolError, OSError) as exc:
        return UploadResult(entry.bundle_id, str(entry.dir), "failed", error=f"{exc}",
                            spooled=str(entry.dir))


def send_pending(spool=None, offer: Offer = Offer(),
                 progress_for: Optional[Callable[[str], Optional[Progress]]] = None,
                 chunk_size: int = DEFAULT_CHUNK, deadline: float = DEFAULT_DEADLINE,
                 session: Optional[requests.Session] = None, retry: RetryPolicy = RetryPolicy(),
                 skip: frozenset = frozenset(), due_only: bool = False) -> list[UploadResult]:
    """One step for every spooled bundle (but those in ``skip``), oldest first; caps first.

    Held and damaged entries come back as ``held`` results with what to do; one
    broken entry never stops the others.
    """
    from .spool import Spool

    spool = spool or Spool()
    spool.enforce_caps()
    results = []
    for view in spool.views():
        if view.bundle_id in skip:
            continue
        progress = progress_for(view.bundle_id) if progress_for else None
        results.append(send_entry(view.entry, offer, progress=progress, chunk_size=chunk_size,
                                  deadline=deadline, session=session, retry=retry, due_only=due_only))
    return results


__all__ = ["AlreadyUploaded", "DEFAULT_CHUNK", "DEFAULT_DEADLINE", "Offer", "RetryPolicy", "ServerInfo",
           "TusClient", "UploadError", "UploadResult", "deliver", "discover", "fetch_bundle", "preflight", "send",
           "send_entry", "send_pending", "terminate", "token_case"]
