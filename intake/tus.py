"""The tus 1.0.0 upload service (core, creation, checksum, termination, expiration) on a Storage.

Nothing here knows HTTP: :mod:`intake.server` turns requests into calls and
:class:`HttpError` into responses.  Everything lives in storage (see
:mod:`intake.storage`), so any process can answer any request of an upload:

* the offset of an upload is where the accepted parts, walked from 0, stop;
  a part is stored whole or not at all, and only after its ``Upload-Checksum``
  matched, so a connection cut mid-PATCH costs at most that one chunk;
* the last part triggers assembly into a private scratch file while its SHA-256
  is computed; the digest must match the ``sha256`` of ``Upload-Metadata``,
  ``bundle.json`` is read with its size cap by the shared validator
  (:func:`collector.bundle.read_header`), it must name the same bundle ID and
  case, and the payload entry is streamed through a hashing sink
  (:func:`collector.unpack.check_payload`) and must have the header's
  ``payload.sha256`` and ``payload.size``.  Only then is the file stored under a
  name of its own and ``record.json`` created exclusively: one winner, and a
  record is written only after its file, so nothing unverified is ever listed
  or served and no record ever lacks its file;
* per case, open uploads and the bytes they announced are counted by small
  marker objects (``cases/<case>/open/<upload>-<length>``), so the quota holds
  across processes sharing one store (two processes racing for the last slot may
  both win it: the quota is a guard against floods, not an accounting system).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

from collector.bundle import BundleError, read_header
from collector.ids import normalize
from collector.unpack import check_payload

from .metrics import Stats
from .storage import READ_CHUNK, Storage, full_as_507
from .tokens import Claims

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,checksum,termination,expiration"
CHECKSUMS: dict[str, Callable] = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}
VERIFIED_HEADER = "Upload-Checksum-Verified"
DEFAULT_MAX_OPEN = 8                   # unfinished uploads per case
DEFAULT_MAX_INFLIGHT = 8 * 1024 ** 3   # bytes announced by a case's unfinished uploads
DEFAULT_MIN_FREE = 1024 ** 3           # free-disk floor for scratch and local storage
FINISH_AT_ONCE = 2                     # completions verified at once (CPU and memory bound)
RUNNING_KEPT = 1024                    # running whole-file hashes kept per process
_DIGITS = re.compile(r"[0-9]{1,19}")            # with fullmatch: no "$" before a newline
MAX_PARTS = 4096                       # parts per upload (tiny PATCHes would make every request slow)
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}\Z")
_CASE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
_PART = re.compile(r"^(\d{16})-(\d{16})\Z")
_OPEN = re.compile(r"^([0-9a-f]{32})-(\d{1,19})\Z")


class HttpError(Exception):
    """A request the service refuses: the status, a message that says what to do, extra JSON."""

    def __init__(self, status: int, message: str, headers: Optional[dict] = None,
                 extra: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.extra = extra or {}


class ClientGone(Exception):
    """The request body ended early (connection cut): nothing can be answered."""


@dataclass
class UploadInfo:
    id: str
    length: int
    case_id: str
    bundle_id: str
    sha256: str
    filename: str = ""
    metadata: dict = field(default_factory=dict)
    created: float = 0.0
    completed: Optional[dict] = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "UploadInfo":
        raw = json.loads(data)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def metadata_header(self) -> str:
        return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in self.metadata.items())


@dataclass(frozen=True)
class Part:
    start: int
    length: int
    key: str
    modified: float

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass
class Snapshot:
    """One upload as storage holds it now: its info, its parts, its offset and last activity."""

    info: UploadInfo
    parts: list[Part]
    last_activity: float

    @property
    def offset(self) -> int:
        return contiguous_end(self.parts)


def contiguous_end(parts: list[Part]) -> int:
    """How far the parts cover the upload from byte 0 without a gap."""
    pos = 0
    for part in sorted(parts, key=lambda p: (p.start, -p.length)):
        if part.start > pos:
            break
        pos = max(pos, part.end)
    return pos


def parse_metadata(header: str) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (tus creation extension)."""
    out: dict[str, str] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not key.isascii() or not key or key in out:
            raise HttpError(400, f"Upload-Metadata has a bad or repeated key {key!r}")
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text") from None
    return out


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def checksum_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def strict_length(value: Optional[str], name: str, required: bool = True) -> Optional[int]:
    """A length or offset header: ASCII digits only (no sign, ``_``, space or exponent).

    ``int()`` accepts ``1_0``, ``+10`` and `` 10 ``; a proxy in front may read such a
    value differently from us, which is how request smuggling starts.
    """
    if value is None:
        if required:
            raise HttpError(400, f"{name} is required")
        return None
    if not _DIGITS.fullmatch(value):
        raise HttpError(400, f"{name} must be plain digits (0-9 only), not {value[:30]!r}")
    return int(value)


@dataclass(frozen=True)
class Limits:
    """Per-case quotas and the free-disk floor (``intake serve --max-open-uploads`` ...)."""

    max_open: int = DEFAULT_MAX_OPEN
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    min_free: int = DEFAULT_MIN_FREE


class PartWriter:
    """One PATCH body on its way into a scratch file, with its ``Upload-Checksum`` digest.

    The HTTP side feeds it (the async app or, in tests, a file object); a write that
    finds the disk full raises :class:`StorageFull` (507), never a silent disconnect.
    """

    def __init__(self, path: Path, algorithm: Optional[str], running=None):
        self.path = path
        self.hasher = CHECKSUMS[algorithm]() if algorithm else None
        self.running = running           # the whole upload's SHA-256 so far, continued here
        self.received = 0
        with full_as_507("the chunk"):
            self._fh = open(path, "wb")

    def write(self, data: bytes) -> None:
        with full_as_507("the chunk"):
            self._fh.write(data)
        self.received += len(data)
        if self.hasher is not None:
            self.hasher.update(data)
        if self.running is not None:
            self.running.update(data)

    def close(self) -> None:
        with full_as_507("the chunk"):
            self._fh.close()


class TusService:
    def __init__(self, storage: Storage, max_size: int, expire_after: float,
                 stats: Optional[Stats] = None, clock: Callable[[], float] = time.time,
                 log: Optional[Callable[[str], None]] = None, limits: Limits = Limits()):
        self.storage = storage
        self.max_size = max_size
        self.expire_after = expire_after
        self.stats = stats or Stats()
        self.clock = clock
        self.log = log or (lambda message: None)
        self.limits = limits
        self._quota_lock = threading.Lock()
        self._finishing = threading.BoundedSemaphore(FINISH_AT_ONCE)
        # upload -> (offset, SHA-256 of bytes [0, offset), [(part key, fingerprint)...]):
        # kept by the process that received the parts in order, so finishing needs no re-hash
        self._running: "OrderedDict[str, tuple[int, object, list]]" = OrderedDict()
        self._running_lock = threading.Lock()

    # ------------------------------------------------------------------ keys

    @staticmethod
    def _info_key(uid: str) -> str:
        return f"uploads/{uid}/info.json"

    @staticmethod
    def _part_key(uid: str, start: int, length: int) -> str:
        return f"uploads/{uid}/parts/{start:016d}-{length:016d}"

    @staticmethod
    def case_part(case_id: Optional[str]) -> str:
        """A case as one key part: ``c-<case>``, or ``h-<sha256>`` of a case ID that is not a
        plain key part (so hostile text never becomes a path)."""
        case = case_id or ""
        if _CASE_KEY.match(case):
            return f"c-{case}"
        return "h-" + hashlib.sha256(case.encode("utf-8")).hexdigest()[:32]

    @classmethod
    def case_folder(cls, bundle_id: str, case_id: Optional[str]) -> str:
        """``bundles/<ID>/<case>``: IDs are unique within a case, so one case's ID never blocks
        another's."""
        return f"bundles/{bundle_id}/{cls.case_part(case_id)}"

    @classmethod
    def record_key(cls, bundle_id: str, case_id: Optional[str]) -> str:
        return f"{cls.case_folder(bundle_id, case_id)}/record.json"

    @classmethod
    def _open_prefix(cls, case_id: Optional[str]) -> str:
        return f"cases/{cls.case_part(case_id)}/open/"

    # ------------------------------------------------------------------ limits

    def check_disk(self, incoming: int) -> None:
        """507 when writing ``incoming`` more bytes would go under the free-disk floor."""
        free = self.storage.free_bytes()
        if free - incoming < self.limits.min_free:
            self.stats.add("disk_refusals")
            raise HttpError(507, f"the intake is short of disk space ({free} bytes free, keeping "
                                 f"{self.limits.min_free} in reserve); try again later",
                            headers={"Retry-After": "300"})

    def _open_uploads(self, case_id: str) -> list[tuple[str, int, str]]:
        found = []
        for entry in self.storage.list(self._open_prefix(case_id)):
            m = _OPEN.match(entry.key.rsplit("/", 1)[-1])
            if m:
                found.append((m.group(1), int(m.group(2)), entry.key))
        return found

    def _prune_open(self, case_id: str) -> None:
        """Drop markers of uploads that finished, were cancelled or expired (another process,
        a crash, or the sweeper not run yet)."""
        for uid, _, key in self._open_uploads(case_id):
            snap = self._load(uid)
            if snap is None or snap.info.completed is not None \
                    or self.clock() - snap.last_activity > self.expire_after:
                if snap is not None and snap.info.completed is None:
                    self._delete_upload(uid)
                self.storage.delete(key)

    def _check_quota(self, case_id: str, length: int) -> None:
        if length > self.limits.max_inflight:
            self.stats.add("quota_refusals")
            raise HttpError(413, f"the upload is {length} bytes, over this case's limit of "
                                 f"{self.limits.max_inflight} bytes in flight")
        for attempt in (0, 1):
            open_now = self._open_uploads(case_id)
            count, inflight = len(open_now), sum(n for _, n, _ in open_now)
            if count < self.limits.max_open and inflight + length <= self.limits.max_inflight:
                return
            if attempt == 0:
                self._prune_open(case_id)
        self.stats.add("quota_refusals")
        raise HttpError(429, f"case {case_id} already has {count} unfinished upload(s) announcing "
                             f"{inflight} bytes (limits: {self.limits.max_open} uploads, "
                             f"{self.limits.max_inflight} bytes); finish or cancel one, or wait for "
                             "abandoned ones to expire", headers={"Retry-After": "60"})

    # ------------------------------------------------------------------ tus

    def create(self, claims: Claims, length_header: Optional[str], metadata_header: str) -> UploadInfo:
        if length_header is None:
            raise HttpError(400, "Upload-Length is required (Upload-Defer-Length is not supported)")
        length = strict_length(length_header, "Upload-Length")
        if length <= 0:
            raise HttpError(400, "Upload-Length must be more than 0: an empty file is not a bundle")
        if length > self.max_size:
            raise HttpError(413, f"the upload is {length} bytes, over this intake's limit of "
                                 f"{self.max_size} bytes; collect with a smaller --max-bundle-size "
                                 "or ask support to raise the limit (intake serve --max-size)")
        meta = parse_metadata(metadata_header)
        try:
            bundle_id = normalize(meta.get("bundle_id", ""))
        except ValueError:
            raise HttpError(400, "Upload-Metadata must carry bundle_id (JCD-XXXX-XXXX-XXXX): "
                                 "upload bundles made by jcdiag collect") from None
        sha256 = meta.get("sha256", "").strip().lower()
        if not _SHA256.match(sha256):
            raise HttpError(400, "Upload-Metadata must carry sha256: the hex SHA-256 of the whole file")
        case_id = meta.get("case_id") or claims.case_id
        claims.allow_upload(case_id)
        existing = self.record(bundle_id, case_id)
        if existing is not None:
            raise already_uploaded(bundle_id, existing)
        self.check_disk(length)
        info = UploadInfo(id=secrets.token_hex(16), length=length, case_id=case_id, bundle_id=bundle_id,
                          sha256=sha256, filename=meta.get("filename", ""), metadata=meta,
                          created=self.clock())
        with self._quota_lock:
            self._check_quota(case_id, length)
            self.storage.put_bytes(f"{self._open_prefix(case_id)}{info.id}-{length}", b"")
        self.storage.put_bytes(self._info_key(info.id), info.to_bytes(), exclusive=True)
        self.stats.add("uploads_created")
        return info

    def snapshot(self, uid: str, claims: Claims) -> Snapshot:
        """The upload ``uid`` if this token may touch it; 404 unknown, 410 expired, 403 other case."""
        if not _UPLOAD_ID.match(uid):
            raise HttpError(404, "no such upload")
        snap = self._load(uid)
        if snap is None:
            raise HttpError(404, "no such upload (finished long ago, cancelled or never made); "
                                 "start a new upload")
        claims.allow_upload(snap.info.case_id)
        if snap.info.completed is None and self.clock() - snap.last_activity > self.expire_after:
            self._delete_upload(uid, snap.info)
            raise HttpError(410, "this upload expired after a long pause; start a new upload")
        return snap

    def _load(self, uid: str) -> Optional[Snapshot]:
        entries = list(self.storage.list(f"uploads/{uid}/"))
        info_key = self._info_key(uid)
        if not any(e.key == info_key for e in entries):
            return None
        data = self.storage.get_bytes(info_key)
        if data is None:
            return None
        parts = []
        for entry in entries:
            m = _PART.match(entry.key.rsplit("/", 1)[-1]) if "/parts/" in entry.key else None
            if m:
                parts.append(Part(int(m.group(1)), int(m.group(2)), entry.key, entry.modified))
        last = max(e.modified for e in entries)
        return Snapshot(UploadInfo.from_bytes(data), parts, last)

    def check_patch(self, uid: str, claims: Claims, offset_header: Optional[str],
                    content_length: int) -> tuple[Snapshot, int]:
        """Before a PATCH body is read: the upload, and the offset the body must start at."""
        snap = self.snapshot(uid, claims)
        info = snap.info
        offset = strict_length(offset_header, "Upload-Offset")
        current = info.length if info.completed else snap.offset
        if offset != current:
            raise HttpError(409, f"Upload-Offset {offset} does not match the upload's offset {current}; "
                                 "ask HEAD for the offset and resume from there",
                            headers={"Upload-Offset": str(current)})
        if current + content_length > info.length:
            raise HttpError(413, f"the body would end at byte {current + content_length}, past "
                                 f"Upload-Length {info.length}")
        if len(snap.parts) >= MAX_PARTS and content_length:
            raise HttpError(400, f"this upload already has {len(snap.parts)} parts; send bigger chunks "
                                 "(or start a new upload)")
        if content_length:
            self.check_disk(content_length)
        return snap, current

    def parse_checksum(self, header: Optional[str]) -> tuple[Optional[str], Optional[bytes]]:
        if not header:
            return None, None
        name, _, value = header.strip().partition(" ")
        if name not in CHECKSUMS:
            raise HttpError(400, f"checksum algorithm {name[:20]!r} is not supported: use one of "
                                 f"{', '.join(CHECKSUMS)}")
        try:
            return name, base64.b64decode(value.strip(), validate=True)
        except ValueError:
            raise HttpError(400, "Upload-Checksum value is not base64") from None

    def running_hash(self, uid: str, start: int):
        """A hasher holding the SHA-256 of bytes [0, start) of ``uid``, if this process has one."""
        if start == 0:
            return hashlib.sha256()
        with self._running_lock:
            entry = self._running.get(uid)
            return entry[1].copy() if entry and entry[0] == start else None

    def _keep_running(self, uid: str, start: int, end: int, running, key: str) -> None:
        fingerprint = self.storage.fingerprint(key) if running is not None else None
        with self._running_lock:
            before = self._running.get(uid)
            if fingerprint is None or (start and not (before and before[0] == start)):
                self._running.pop(uid, None)
                return
            chain = (before[2] if start else []) + [(key, fingerprint)]
            self._running[uid] = (end, running, chain)
            self._running.move_to_end(uid)
            while len(self._running) > RUNNING_KEPT:
                self._running.popitem(last=False)

    def _known_digest(self, snap: Snapshot) -> Optional[str]:
        """The running SHA-256 of the whole upload, if it covers exactly the stored parts now."""
        with self._running_lock:
            entry = self._running.pop(snap.info.id, None)
        if entry is None or entry[0] != snap.info.length:
            return None
        parts = sorted(snap.parts, key=lambda p: (p.start, -p.length))
        if [p.key for p in parts] != [key for key, _ in entry[2]]:
            return None
        if any(self.storage.fingerprint(key) != fp for key, fp in entry[2]):
            return None
        return entry[1].hexdigest()

    def commit_part(self, uid: str, snap: Snapshot, start: int, length: int, body: PartWriter,
                    expected: Optional[bytes]) -> tuple[Snapshot, int]:
        """Store a received body as the part at ``start``; finish the upload at its last byte.

        A body cut short is kept (as a shorter part) only when no checksum came with
        it, as tus allows; with a checksum nothing partial can be trusted.
        """
        received = body.received
        self.stats.add("patch_bytes_received", received)
        if received < length:
            self.stats.add("patches_cut")
            if body.hasher is None and received:
                self.storage.put_file(self._part_key(uid, start, received), body.path)
                self.stats.add("patch_bytes_stored", received)
            raise ClientGone()
        if body.hasher is not None and body.hasher.digest() != expected:
            self.stats.add("checksum_mismatches")
            raise HttpError(460, "the checksum of this chunk does not match Upload-Checksum; it was "
                                 "not stored: send it again")
        current = start
        if length:
            key = self._part_key(uid, start, length)
            self.storage.put_file(key, body.path)
            self.stats.add("patch_bytes_stored", length)
            self._keep_running(uid, start, start + length, body.running, key)
            current += length
            snap = self._load(uid) or snap
        if current == snap.info.length and not snap.info.completed:
            snap.info = self.finish(uid, snap)
        return snap, current

    def receive(self, uid: str, claims: Claims, offset_header: Optional[str],
                content_length: int, body: BinaryIO, checksum_header: Optional[str]) -> tuple[Snapshot, int]:
        """One PATCH read from a file object (in-process callers and tests; the app streams)."""
        snap, current = self.check_patch(uid, claims, offset_header, content_length)
        algorithm, expected = self.parse_checksum(checksum_header)
        with self.storage.scratch_file() as scratch:
            writer = PartWriter(scratch, algorithm, self.running_hash(uid, current))
            try:
                while writer.received < content_length:
                    try:
                        data = body.read(min(READ_CHUNK, content_length - writer.received))
                    except OSError:      # timeouts and resets: the client is gone
                        break
                    if not data:
                        break
                    writer.write(data)
            finally:
                writer.close()
            return self.commit_part(uid, snap, current, content_length, writer, expected)

    def terminate(self, uid: str, claims: Claims) -> None:
        snap = self.snapshot(uid, claims)
        if snap.info.completed:
            raise HttpError(403, "this upload is finished and verified; a finished bundle cannot be "
                                 "withdrawn by the uploader")
        self._delete_upload(uid, snap.info)

    def _delete_upload(self, uid: str, info: Optional[UploadInfo] = None) -> None:
        if info is not None:
            self.storage.delete(f"{self._open_prefix(info.case_id)}{uid}-{info.length}")
        self.storage.delete(self._info_key(uid))
        self.storage.delete_prefix(f"uploads/{uid}/")

    # ------------------------------------------------------------------ completion

    def finish(self, uid: str, snap: Snapshot) -> UploadInfo:
        """Assemble, verify and publish; a bundle that fails verification is deleted whole.

        A full disk (507) keeps the upload: the client retries its last PATCH later.
        """
        with self._finishing:
            return self._finish(uid, snap)

    def _finish(self, uid: str, snap: Snapshot) -> UploadInfo:
        info = snap.info
        folder = self.case_folder(info.bundle_id, info.case_id)
        known = self._known_digest(snap)
        with self.storage.scratch_file() as scratch:
            try:
                digest, size = self._assemble(snap, scratch, hashing=known is None)
                digest = known or digest
            except KeyError:                       # a part vanished: another request finished it
                again = self._load(uid)
                if again is not None and again.info.completed:
                    return again.info
                existing = self.record(info.bundle_id, info.case_id)
                if existing is not None and existing.get("upload_id") != uid:   # another upload won
                    raise already_uploaded(info.bundle_id, existing, " by another upload; this copy was discarded")
                raise HttpError(500, "the upload's parts changed while being assembled; ask HEAD and retry")
            try:
                header = self._verify(info, scratch, digest)
            except HttpError:
                self._delete_upload(uid, info)
                self.stats.add("uploads_failed")
                raise
            object_key = f"{folder}/{uid}-{secrets.token_hex(4)}.7z"     # this attempt's own name
            self.storage.put_file(object_key, scratch)
        record = {
            "bundle_id": info.bundle_id, "case_id": info.case_id, "sha256": digest,
            "size": size, "filename": info.filename or f"{info.bundle_id}.7z",
            "uploaded_at": datetime.fromtimestamp(self.clock(), timezone.utc).replace(microsecond=0).isoformat(),
            "upload_id": uid, "object": object_key, "verified": True,
            "created": header.get("created"), "tool": header.get("tool"),
            "recipients": [r.get("key_id") for r in header.get("recipients", [])],
            "password_protected": bool(header.get("password_protected")),
            "payload": {"sha256": header["payload"]["sha256"], "size": header["payload"]["size"]},
        }
        if not self.storage.put_bytes(self.record_key(info.bundle_id, info.case_id),
                                      json.dumps(record, indent=1).encode(), exclusive=True):
            self.storage.delete(object_key)        # the loser removes only its own file
            existing = self.record(info.bundle_id, info.case_id) or {}
            if existing.get("upload_id") != uid:
                self._delete_upload(uid, info)
                raise already_uploaded(info.bundle_id, existing, " by another upload; this copy was discarded")
            object_key, digest = existing.get("object", object_key), existing.get("sha256", digest)
        else:
            self.stats.add("uploads_completed")
            self.log(f"bundle {info.bundle_id} for case {info.case_id} complete and verified "
                     f"({size} bytes, sha256 {digest})")
        info.completed = {"sha256": digest, "at": self.clock(), "object": object_key}
        self.storage.put_bytes(self._info_key(uid), info.to_bytes())
        self.storage.delete(f"{self._open_prefix(info.case_id)}{uid}-{info.length}")
        for part in snap.parts:
            self.storage.delete(part.key)
        return info

    def _assemble(self, snap: Snapshot, target: Path, hashing: bool = True) -> tuple[str, int]:
        """The parts, in order, into the local file ``target``; its SHA-256 (when ``hashing``)
        and size."""
        sha, pos = hashlib.sha256() if hashing else None, 0
        with full_as_507("the assembled bundle"), open(target, "wb") as out:
            for part in sorted(snap.parts, key=lambda p: (p.start, -p.length)):
                if part.end <= pos:
                    continue
                if part.start > pos:
                    break
                with closing(self.storage.open(part.key)) as reader:
                    skip = pos - part.start
                    while skip:
                        skipped = len(reader.read(min(READ_CHUNK, skip)))
                        if not skipped:
                            raise KeyError(part.key)
                        skip -= skipped
                    while pos < part.end:
                        data = reader.read(min(READ_CHUNK, part.end - pos))
                        if not data:
                            raise KeyError(part.key)      # shorter than its name says: treat as gone
                        pos += len(data)
                        if sha is not None:
                            sha.update(data)
                        out.write(data)
        if pos != snap.info.length:
            raise KeyError(f"uploads/{snap.info.id}: {pos} of {snap.info.length} bytes")
        return (sha.hexdigest() if sha is not None else ""), pos

    def _verify(self, info: UploadInfo, path: Path, digest: str) -> dict:
        if digest != info.sha256:
            raise HttpError(422, f"the SHA-256 of the uploaded bytes ({digest}) does not match "
                                 f"the sha256 in Upload-Metadata ({info.sha256}); nothing was kept: "
                                 "check the file was not changed during the upload and send it again")
        try:
            header = read_header(path)              # the shared validator, size-capped
        except BundleError as exc:
            self.stats.add("verification_failures")
            raise HttpError(422, f"the upload is not a readable jcdiag bundle ({_hide(exc, path)}); "
                                 "nothing was kept") from None
        if header["bundle_id"] != info.bundle_id:
            self.stats.add("verification_failures")
            raise HttpError(422, f"bundle.json names bundle {header['bundle_id']} but the upload "
                                 f"says {info.bundle_id}; nothing was kept")
        if header.get("case_id") not in (None, "", info.case_id):
            self.stats.add("verification_failures")
            raise HttpError(422, f"the bundle was collected for case {header.get('case_id')}, not case "
                                 f"{info.case_id}; upload it with that case's token")
        try:
            check_payload(path, header)
        except BundleError as exc:
            self.stats.add("verification_failures")
            raise HttpError(422, "the payload does not match the sha256 and size in its bundle.json "
                                 f"({_hide(exc, path)}); nothing was kept") from None
        return header

    # ------------------------------------------------------------------ engineers

    def record(self, bundle_id: str, case_id: Optional[str]) -> Optional[dict]:
        """The record of ``bundle_id`` in ``case_id``, or None."""
        data = self.storage.get_bytes(self.record_key(bundle_id, case_id))
        return json.loads(data) if data else None

    def matches(self, bundle_id: str, case_id: Optional[str] = None) -> list[dict]:
        """Every record of ``bundle_id`` (one per case that has it), or only ``case_id``'s."""
        if case_id is not None:
            found = self.record(bundle_id, case_id)
            return [found] if found else []
        found = []
        for entry in self.storage.list(f"bundles/{bundle_id}/"):
            if entry.key.endswith("/record.json"):
                data = self.storage.get_bytes(entry.key)
                if data:
                    found.append(json.loads(data))
        return found

    def records(self, case_id: Optional[str] = None) -> Iterator[dict]:
        for entry in self.storage.list("bundles/"):
            if entry.key.endswith("/record.json"):
                data = self.storage.get_bytes(entry.key)
                if data:
                    rec = json.loads(data)
                    if case_id is None or rec.get("case_id") == case_id:
                        yield rec

    # ------------------------------------------------------------------ expiration

    def sweep(self) -> int:
        """Delete uploads idle past ``expire_after`` (finished ones' markers too) and strays.

        Safe to run in every process at once: deleting twice is harmless.
        """
        now = self.clock()
        groups: dict[str, list] = {}
        for entry in self.storage.list("uploads/"):
            groups.setdefault(entry.key.split("/")[1], []).append(entry)
        removed = 0
        for uid, entries in groups.items():
            if now - max(e.modified for e in entries) <= self.expire_after:
                continue
            data = self.storage.get_bytes(self._info_key(uid))
            try:
                info = UploadInfo.from_bytes(data) if data else None
            except (ValueError, TypeError):
                info = None
            self._delete_upload(uid, info)
            removed += 1
        removed += self._sweep_unpublished(now)
        self._sweep_markers()
        if removed:
            self.log(f"expired {removed} abandoned upload(s)")
        return removed

    def _sweep_markers(self) -> None:
        """Quota markers whose upload is gone (cancelled elsewhere, a crash) are dropped."""
        for entry in self.storage.list("cases/"):
            m = _OPEN.match(entry.key.rsplit("/", 1)[-1])
            if m and self.storage.stat(self._info_key(m.group(1))) is None:
                self.storage.delete(entry.key)

    def _sweep_unpublished(self, now: float) -> int:
        """Assembled files no record points to (a process died while finishing): delete old ones.

        A folder with a record and one file is the normal case and costs no read.
        """
        folders: dict[str, list] = {}
        for entry in self.storage.list("bundles/"):
            folders.setdefault(entry.key.rsplit("/", 1)[0], []).append(entry)
        removed = 0
        for folder, entries in folders.items():
            files = [e for e in entries if e.key.endswith(".7z")]
            has_record = any(e.key.endswith("/record.json") for e in entries)
            if has_record and len(files) == 1:
                continue
            data = self.storage.get_bytes(f"{folder}/record.json") if has_record else None
            published = json.loads(data).get("object") if data else None
            for entry in files:
                if entry.key != published and now - entry.modified > self.expire_after:
                    self.storage.delete(entry.key)
                    removed += 1
        return removed


def already_uploaded(bundle_id: str, existing: dict, how: str = "; nothing more to send") -> HttpError:
    """The answer to a second upload of a finished bundle: 403, which tus clients do not retry
    (tus-js-client retries 5xx, 409 and 423), with the stored sha256 so an uploader holding
    the same bytes can call it done."""
    return HttpError(403, f"bundle {bundle_id} was already uploaded{how}",
                     extra={"sha256": existing.get("sha256"), "already_uploaded": True})


def _hide(exc: Exception, path: Path) -> str:
    """A validator's message without the server's scratch path."""
    return str(exc).replace(str(path), "the upload")
