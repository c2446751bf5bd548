"""The tus 1.0.0 upload service (core, creation, checksum, termination, expiration) on a Storage.

Nothing here knows HTTP: :mod:`intake.server` turns requests into calls and
:class:`HttpError` into responses.  Everything lives in storage (see
:mod:`intake.storage`), so any process can answer any request of an upload:

* the offset of an upload is where the accepted parts, walked from 0, stop;
  a part is stored whole or not at all, and only after its ``Upload-Checksum``
  matched, so a connection cut mid-PATCH costs at most that one chunk;
* the last part triggers assembly: the parts are streamed into the bundle object
  while their SHA-256 is computed, the digest is compared with the ``sha256`` of
  ``Upload-Metadata``, and the bundle's own ``bundle.json`` (read from the first
  and last MiB) must name the same bundle ID and case.  Only then is
  ``record.json`` created (exclusively: a second upload of a finished bundle ID
  gets 409), and only a bundle with a record is ever shown to engineers.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

from collector.bundle import BundleError, read_header
from collector.ids import normalize

from .storage import READ_CHUNK, Storage
from .tokens import Claims

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,checksum,termination,expiration"
CHECKSUMS: dict[str, Callable] = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}
VERIFIED_HEADER = "Upload-Checksum-Verified"
HEADER_WINDOW = 1024 * 1024            # bundle.json is read from the first and last MiB
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_CASE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PART = re.compile(r"^(\d{16})-(\d{16})$")


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


class Stats:
    """Per-process counters (bytes received and stored); for operators and tests, not state."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, name: str, value: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + value

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


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


class TusService:
    def __init__(self, storage: Storage, max_size: int, expire_after: float,
                 stats: Optional[Stats] = None, clock: Callable[[], float] = time.time,
                 log: Optional[Callable[[str], None]] = None):
        self.storage = storage
        self.max_size = max_size
        self.expire_after = expire_after
        self.stats = stats or Stats()
        self.clock = clock
        self.log = log or (lambda message: None)

    # ------------------------------------------------------------------ keys

    @staticmethod
    def _info_key(uid: str) -> str:
        return f"uploads/{uid}/info.json"

    @staticmethod
    def _part_key(uid: str, start: int, length: int) -> str:
        return f"uploads/{uid}/parts/{start:016d}-{length:016d}"

    @staticmethod
    def case_folder(bundle_id: str, case_id: Optional[str]) -> str:
        """``bundles/<ID>/<case>``: IDs are unique within a case, so one case's ID never blocks
        another's.  A case ID that is not a plain key part is stored by its SHA-256."""
        case = case_id or ""
        if _CASE_KEY.match(case):
            part = f"c-{case}"
        else:
            part = "h-" + hashlib.sha256(case.encode("utf-8")).hexdigest()[:32]
        return f"bundles/{bundle_id}/{part}"

    @classmethod
    def record_key(cls, bundle_id: str, case_id: Optional[str]) -> str:
        return f"{cls.case_folder(bundle_id, case_id)}/record.json"

    # ------------------------------------------------------------------ tus

    def create(self, claims: Claims, length_header: Optional[str], metadata_header: str) -> UploadInfo:
        if length_header is None:
            raise HttpError(400, "Upload-Length is required (Upload-Defer-Length is not supported)")
        try:
            length = int(length_header)
        except ValueError:
            raise HttpError(400, f"Upload-Length {length_header!r} is not a number") from None
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
            raise HttpError(409, f"bundle {bundle_id} was already uploaded; nothing more to send",
                            extra={"sha256": existing.get("sha256")})
        info = UploadInfo(id=secrets.token_hex(16), length=length, case_id=case_id, bundle_id=bundle_id,
                          sha256=sha256, filename=meta.get("filename", ""), metadata=meta,
                          created=self.clock())
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
            self._delete_upload(uid)
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

    def receive(self, uid: str, claims: Claims, offset_header: Optional[str],
                content_length: int, body: BinaryIO, checksum_header: Optional[str]) -> tuple[Snapshot, int]:
        """One PATCH: store the body as a part at the current offset; finish at the last byte."""
        snap = self.snapshot(uid, claims)
        info = snap.info
        try:
            offset = int(offset_header) if offset_header is not None else -1
        except ValueError:
            offset = -1
        if offset < 0:
            raise HttpError(400, "Upload-Offset is required and must be a number")
        current = info.length if info.completed else snap.offset
        if offset != current:
            raise HttpError(409, f"Upload-Offset {offset} does not match the upload's offset {current}; "
                                 "ask HEAD for the offset and resume from there",
                            headers={"Upload-Offset": str(current)})
        if current + content_length > info.length:
            raise HttpError(413, f"the body would end at byte {current + content_length}, past "
                                 f"Upload-Length {info.length}")
        algorithm, expected = self._parse_checksum(checksum_header)
        if content_length:
            self._store_part(uid, current, content_length, body, algorithm, expected)
            current += content_length
            snap = self._load(uid) or snap
        if current == info.length and not info.completed:
            info = self.finish(uid, snap)
            snap.info = info
        return snap, current

    def _parse_checksum(self, header: Optional[str]) -> tuple[Optional[str], Optional[bytes]]:
        if not header:
            return None, None
        name, _, value = header.strip().partition(" ")
        if name not in CHECKSUMS:
            raise HttpError(400, f"checksum algorithm {name!r} is not supported: use one of "
                                 f"{', '.join(CHECKSUMS)}")
        try:
            return name, base64.b64decode(value.strip(), validate=True)
        except ValueError:
            raise HttpError(400, "Upload-Checksum value is not base64") from None

    def _store_part(self, uid: str, start: int, length: int, body: BinaryIO,
                    algorithm: Optional[str], expected: Optional[bytes]) -> None:
        """Receive the body into a scratch file, check it, then store it as one part.

        A body cut short is kept (as a shorter part) only when no checksum came with
        it, as tus allows; with a checksum nothing partial can be trusted.
        """
        hasher = CHECKSUMS[algorithm]() if algorithm else None
        with self.storage.scratch_file() as scratch:
            received = 0
            with open(scratch, "wb") as out:
                try:
                    while received < length:
                        data = body.read(min(READ_CHUNK, length - received))
                        if not data:
                            break
                        out.write(data)
                        received += len(data)
                        if hasher:
                            hasher.update(data)
                except OSError:          # timeouts and resets: the client is gone
                    pass
                out.flush()
            self.stats.add("patch_bytes_received", received)
            if received < length:
                self.stats.add("patches_cut")
                if hasher is None and received:
                    self.storage.put_file(self._part_key(uid, start, received), scratch)
                    self.stats.add("patch_bytes_stored", received)
                raise ClientGone()
            if hasher is not None and hasher.digest() != expected:
                self.stats.add("checksum_mismatches")
                raise HttpError(460, f"the {algorithm} checksum of this chunk does not match "
                                     "Upload-Checksum; it was not stored: send it again")
            self.storage.put_file(self._part_key(uid, start, length), scratch)
            self.stats.add("patch_bytes_stored", length)

    def terminate(self, uid: str, claims: Claims) -> None:
        snap = self.snapshot(uid, claims)
        if snap.info.completed:
            raise HttpError(403, "this upload is finished and verified; a finished bundle cannot be "
                                 "withdrawn by the uploader")
        self._delete_upload(uid)

    def _delete_upload(self, uid: str) -> None:
        self.storage.delete(self._info_key(uid))
        self.storage.delete_prefix(f"uploads/{uid}/")

    # ------------------------------------------------------------------ completion

    def finish(self, uid: str, snap: Snapshot) -> UploadInfo:
        """Assemble, verify and publish; any failure deletes the upload (nothing half-shown)."""
        info = snap.info
        object_key = f"{self.case_folder(info.bundle_id, info.case_id)}/{uid}.7z"
        digest = _Digest()
        try:
            self.storage.write_stream(object_key, digest.watch(self._assemble(snap)))
        except KeyError:                           # a part vanished: another process finished it
            again = self._load(uid)
            if again is not None and again.info.completed:
                return again.info
            raise HttpError(500, "the upload's parts changed while being assembled; ask HEAD and retry")
        try:
            header = self._verify(info, digest)
        except HttpError:
            self.storage.delete(object_key)
            self._delete_upload(uid)
            self.stats.add("rejected_bundles")
            raise
        record = {
            "bundle_id": info.bundle_id, "case_id": info.case_id, "sha256": digest.hexdigest(),
            "size": digest.size, "filename": info.filename or f"{info.bundle_id}.7z",
            "uploaded_at": datetime.fromtimestamp(self.clock(), timezone.utc).replace(microsecond=0).isoformat(),
            "upload_id": uid, "object": object_key,
            "created": header.get("created"), "tool": header.get("tool"),
            "recipients": [r.get("key_id") for r in header.get("recipients", [])],
            "password_protected": bool(header.get("password_protected")),
        }
        if not self.storage.put_bytes(self.record_key(info.bundle_id, info.case_id),
                                      json.dumps(record, indent=1).encode(), exclusive=True):
            existing = self.record(info.bundle_id, info.case_id) or {}
            if existing.get("upload_id") != uid:
                self.storage.delete(object_key)
                self._delete_upload(uid)
                raise HttpError(409, f"bundle {info.bundle_id} was already uploaded by another upload; "
                                     "this copy was discarded", extra={"sha256": existing.get("sha256")})
        info.completed = {"sha256": digest.hexdigest(), "at": self.clock(), "object": object_key}
        self.storage.put_bytes(self._info_key(uid), info.to_bytes())
        for part in snap.parts:
            self.storage.delete(part.key)
        self.stats.add("uploads_completed")
        self.log(f"bundle {info.bundle_id} for case {info.case_id} complete and verified "
                 f"({digest.size} bytes, sha256 {digest.hexdigest()})")
        return info

    def _assemble(self, snap: Snapshot) -> Iterator[bytes]:
        pos = 0
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
                    yield data
        if pos != snap.info.length:
            raise KeyError(f"uploads/{snap.info.id}: {pos} of {snap.info.length} bytes")

    def _verify(self, info: UploadInfo, digest: "_Digest") -> dict:
        if digest.hexdigest() != info.sha256:
            raise HttpError(422, f"the SHA-256 of the uploaded bytes ({digest.hexdigest()}) does not match "
                                 f"the sha256 in Upload-Metadata ({info.sha256}); nothing was kept: "
                                 "check the file was not changed during the upload and send it again")
        try:
            header = digest.header()
        except BundleError as exc:
            raise HttpError(422, f"the upload is not a readable jcdiag bundle ({exc}); nothing was kept") from None
        if header.get("bundle_id") != info.bundle_id:
            raise HttpError(422, f"bundle.json names bundle {header.get('bundle_id')} but the upload "
                                 f"says {info.bundle_id}; nothing was kept")
        if header.get("case_id") not in (None, "", info.case_id):
            raise HttpError(422, f"the bundle was collected for case {header.get('case_id')}, not case "
                                 f"{info.case_id}; upload it with that case's token")
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
            self._delete_upload(uid)
            removed += 1
        removed += self._sweep_unpublished(now)
        if removed:
            self.log(f"expired {removed} abandoned upload(s)")
        return removed

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


class _Digest:
    """Watches the assembled stream: SHA-256, size, and the first and last MiB for bundle.json."""

    def __init__(self):
        self._sha = hashlib.sha256()
        self.size = 0
        self.head = bytearray()
        self.tail = bytearray()

    def watch(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._sha.update(chunk)
            self.size += len(chunk)
            if len(self.head) < HEADER_WINDOW:
                self.head += chunk[:HEADER_WINDOW - len(self.head)]
            self.tail += chunk[-HEADER_WINDOW:]
            if len(self.tail) > HEADER_WINDOW:
                del self.tail[:len(self.tail) - HEADER_WINDOW]
            yield chunk

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def header(self) -> dict:
        """bundle.json, read from a sparse copy holding only the first and last MiB.

        A 7z archive keeps its index at the end and jcdiag writes bundle.json first,
        so those two windows are all ``read_header`` touches; anything it would read
        in between is a hole of zeros and fails 7z's CRC check instead of passing.
        """
        with tempfile.TemporaryDirectory(prefix="jcdiag-intake-") as tmp:
            path = Path(tmp) / "bundle.7z"
            with open(path, "wb") as fh:
                fh.write(self.head)
                tail_start = self.size - len(self.tail)
                start = max(len(self.head), tail_start)
                fh.seek(start)
                fh.write(self.tail[start - tail_start:])
                fh.truncate(self.size)
            return read_header(path)
