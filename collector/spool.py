"""The durable queue of bundles waiting to be uploaded: a small state machine per bundle.

Each entry is a private folder named by the bundle ID::

    <spool>/<BUNDLE-ID>/<BUNDLE-ID>.7z   the bundle (hard link to the output when safe, else a copy)
    <spool>/<BUNDLE-ID>/state.json       status, server, case, token, tus URL, offset, attempts, errors
    <spool>/<BUNDLE-ID>/lock             held (flock / msvcrt) by the run that is sending or dropping it
    <spool>/keys-<hash>.json             the support keys an intake published at the last contact

An entry is ``pending`` (sent by the next run, retried with backoff) or ``held``
(a permanent refusal such as 401/403/404/410/413/422, or a missing, changed or
unreadable bundle file: kept with its reason, never retried until ``jcdiag spool
retry ID``); it is gone once the server has confirmed the bundle's sha256.

``state.json`` is hostile input like everything else jcdiag reads: it may be
truncated, written by an old version, edited by hand or point outside its
folder.  :meth:`SpoolState.from_dict` is the one place it is validated; an entry
that fails validation is listed as held with the reason (never a crash, never
in the way of the others) and ``jcdiag spool drop ID`` removes it.

``state.json`` is written last when an entry is made and always atomically
(temporary file, fsync, rename, fsync of the folder), so after a crash or a
reboot an entry is either whole or an orphan the next run sweeps.  The state
keeps the upload token it was spooled with, so a later run can finish it; the
folder is 0700 and the file 0600.  Size and age caps drop the oldest entries,
with a logged warning, so a machine that never reaches the server does not fill
its disk.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
import stat
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

from .bundle import read_header, sha256_file
from .durable import fsync_dir, write_atomic
from .filelock import try_lock, unlock
from .ids import is_bundle_id

log = logging.getLogger("jcdiag.spool")

ENV = "JCDIAG_SPOOL"
STATE = "state.json"
LOCK = "lock"
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
DEFAULT_MAX_AGE = 30 * 86400.0
STATE_LIMIT = 256 * 1024                  # a state file is a few hundred bytes; refuse monsters
KEYS_LIMIT = 256 * 1024
PENDING, HELD = "pending", "held"
#: HTTP answers that no retry will change: the entry is held until an admin acts.
HOLD_STATUSES = frozenset({401, 403, 404, 409, 410, 413, 422})
AUTH_STATUSES = frozenset({401, 403})
BACKOFF_BASE, BACKOFF_CAP = 60.0, 6 * 3600.0

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class SpoolError(Exception):
    """The spool cannot be used; the message names the folder and the fix."""


class SpoolBusy(SpoolError):
    """Another run holds this entry's lock (it is sending the bundle now)."""


class DamagedState(SpoolError):
    """An entry's state.json is unreadable or invalid; the message says why."""


def default_spool_dir() -> Path:
    """The spool folder for this OS and user, ``$JCDIAG_SPOOL`` first.

    Root (or Administrator) spools system-wide so scheduled runs share it; other
    users get a folder of their own.
    """
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return default_state_dir() / "spool"


def default_state_dir() -> Path:
    """jcdiag's per-OS state folder (spool and run lock live in it by default)."""
    if sys.platform.startswith("win"):
        program_data = os.environ.get("ProgramData") or r"C:\ProgramData"
        return Path(program_data) / "jcdiag"
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if sys.platform == "darwin":
        base = Path("/Library/Application Support") if is_root else \
            Path.home() / "Library" / "Application Support"
        return base / "jcdiag"
    if is_root and os.access("/var/lib", os.W_OK):
        return Path("/var/lib/jcdiag")
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "jcdiag"


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _text(value: Any, name: str, limit: int = 4096, url: bool = False) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise DamagedState(f"{name} is not a short printable text")
    if url and not _is_http_url(value):
        raise DamagedState(f"{name} {value[:80]!r} is not an http(s) URL")
    return value


def _number(value: Any, name: str, kind=int, default=0):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise DamagedState(f"{name} is not a non-negative number")
    return kind(value)


@dataclass
class SpoolState:
    bundle_id: str
    filename: str
    sha256: str
    size: int
    server: Optional[str] = None
    case_id: Optional[str] = None
    token: Optional[str] = None
    ca_bundle: Optional[str] = None
    tus_url: Optional[str] = None
    offset: int = 0
    attempts: int = 0
    last_error: Optional[str] = None
    created: str = ""
    updated: str = ""
    created_ts: float = 0.0
    status: str = PENDING
    held_status: Optional[int] = None          # the HTTP status that held it (None: a local reason)
    held_reason: Optional[str] = None
    next_attempt_ts: float = 0.0               # backoff: a scheduled run waits until then

    @classmethod
    def from_dict(cls, raw: Any, folder: Optional[str] = None) -> "SpoolState":
        """The one validator of spool state: types, IDs, a file name that stays in its folder.

        Fields an older version did not write take their defaults; unknown ones are ignored.
        """
        if not isinstance(raw, dict):
            raise DamagedState("not a JSON object")
        bundle_id = raw.get("bundle_id")
        if not isinstance(bundle_id, str) or not is_bundle_id(bundle_id):
            raise DamagedState(f"bundle_id {str(bundle_id)[:40]!r} is not a bundle ID")
        if folder is not None and bundle_id != folder:
            raise DamagedState(f"it names bundle {bundle_id}, but its folder is {folder}")
        filename = raw.get("filename")
        if not isinstance(filename, str) or not _FILENAME.match(filename) or filename in (STATE, LOCK):
            raise DamagedState(f"file name {str(filename)[:80]!r} is not a plain file name in the entry")
        sha256 = raw.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise DamagedState("sha256 is not a hex SHA-256")
        status = raw.get("status", PENDING)
        if status not in (PENDING, HELD):
            raise DamagedState(f"status {str(status)[:20]!r} is neither {PENDING} nor {HELD}")
        held_status = raw.get("held_status")
        if held_status is not None and (isinstance(held_status, bool) or not isinstance(held_status, int)
                                        or not 100 <= held_status <= 599):
            raise DamagedState("held_status is not an HTTP status")
        return cls(bundle_id=bundle_id, filename=filename, sha256=sha256,
                   size=_number(raw.get("size"), "size"),
                   server=_text(raw.get("server"), "server", url=True),
                   case_id=_text(raw.get("case_id"), "case_id", 128),
                   token=_text(raw.get("token"), "token", 16384),
                   ca_bundle=_text(raw.get("ca_bundle"), "ca_bundle"),
                   tus_url=_text(raw.get("tus_url"), "tus_url", url=True),
                   offset=_number(raw.get("offset"), "offset"),
                   attempts=_number(raw.get("attempts"), "attempts"),
                   last_error=_printable(raw.get("last_error")),
                   created=_printable(raw.get("created")) or "",
                   updated=_printable(raw.get("updated")) or "",
                   created_ts=_number(raw.get("created_ts"), "created_ts", float, 0.0),
                   status=status, held_status=held_status,
                   held_reason=_printable(raw.get("held_reason")),
                   next_attempt_ts=_number(raw.get("next_attempt_ts"), "next_attempt_ts", float, 0.0))

    def public(self) -> dict:
        """What may be printed: everything but the token."""
        data = asdict(self)
        data.pop("token", None)
        data["has_token"] = self.token is not None
        return data


def _printable(value: Any) -> Optional[str]:
    """Free text from the state (an error message): kept, made printable and short."""
    if value is None:
        return None
    text = str(value)[:2000]
    return "".join(c if c.isprintable() else "?" for c in text)


def held_action(bid: str, state: Optional[SpoolState]) -> str:
    """What an admin does about the held entry ``bid`` (``state`` None: damaged), in one sentence."""
    if state is None:
        return f"jcdiag spool drop {bid} removes it (its bundle, if intact, can be uploaded again by file)"
    if state.held_status in AUTH_STATUSES:
        return (f"get a valid upload token for case {state.case_id or '?'} and run: jcdiag spool retry "
                f"{bid} --token-file F (or jcdiag upload --pending --token-file F)")
    if state.held_status is None:
        return (f"if you still have {state.filename}, jcdiag upload FILE --server {state.server or 'URL'} "
                f"puts it back; else jcdiag spool drop {bid} removes it")
    return f"fix the cause, then jcdiag spool retry {bid}; or jcdiag spool drop {bid}"


class _FileLock:
    """An exclusive, non-blocking lock on a file; the OS drops it if the process dies."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = None

    def acquire(self) -> None:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise SpoolError(f"cannot lock {self.path} ({exc.strerror or exc})") from None
        self.fh = os.fdopen(fd, "r+b")
        if not try_lock(self.fh.fileno()):
            self.fh.close()
            self.fh = None
            raise SpoolBusy(f"{self.path.parent.name} is being sent by another jcdiag run")

    def release(self) -> None:
        if self.fh is None:
            return
        try:
            unlock(self.fh.fileno())
        finally:
            self.fh.close()
            self.fh = None


class SpoolEntry:
    """One queued bundle; change it only while holding :meth:`locked`."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.bundle_id = directory.name

    @property
    def state_path(self) -> Path:
        return self.dir / STATE

    def load(self) -> SpoolState:
        """The validated state; :class:`DamagedState` when it cannot be trusted."""
        try:
            # no link, and no waiting on a FIFO someone put in its place
            fd = os.open(self.state_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_NONBLOCK", 0))
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    raise DamagedState(f"{self.state_path}: not a regular file")
                raw = fh.read(STATE_LIMIT + 1)
        except FileNotFoundError:
            raise SpoolError(f"{self.dir}: no longer in the spool") from None
        except OSError as exc:
            raise DamagedState(f"{self.state_path}: unreadable ({exc.strerror or exc})") from None
        if len(raw) > STATE_LIMIT:
            raise DamagedState(f"{self.state_path}: larger than {STATE_LIMIT} bytes")
        try:
            return SpoolState.from_dict(json.loads(raw.decode("utf-8")), folder=self.bundle_id)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DamagedState(f"{self.state_path}: not valid JSON ({exc})") from None
        except DamagedState as exc:
            raise DamagedState(f"{self.state_path}: {exc}") from None

    @property
    def bundle_path(self) -> Path:
        return self.dir / self.load().filename

    def save(self, state: SpoolState) -> None:
        state.updated = _now_iso()
        write_atomic(self.state_path, json.dumps(asdict(state), indent=1).encode("utf-8"))

    def update(self, **changes) -> SpoolState:
        state = self.load()
        for name, value in changes.items():
            setattr(state, name, value)
        self.save(state)
        return state

    def hold(self, reason: str, status: Optional[int] = None) -> SpoolState:
        """Stop retrying on its own: a refusal or a local problem no retry can fix."""
        return self.update(status=HELD, held_reason=reason, held_status=status, last_error=reason)

    def release(self) -> SpoolState:
        """Back to pending, due now (``spool retry``, or a token for its case)."""
        return self.update(status=PENDING, held_reason=None, held_status=None, next_attempt_ts=0.0)

    def failed_attempt(self, error: str) -> SpoolState:
        """One more failed try: record it and back off (full jitter, capped)."""
        state = self.load()
        attempts = state.attempts + 1
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempts - 1, 20))
        return self.update(attempts=attempts, last_error=error,
                           next_attempt_ts=time.time() + random.uniform(delay / 2, delay))

    def check_bundle(self, state: SpoolState) -> Optional[str]:
        """Why the queued bundle file cannot be sent (missing, not a plain file, changed), or None."""
        path = self.dir / state.filename
        try:
            st = path.lstat()
        except FileNotFoundError:
            return f"the bundle file {path} is missing"
        except OSError as exc:
            return f"the bundle file {path} cannot be read ({exc.strerror or exc})"
        if not stat.S_ISREG(st.st_mode):
            return f"{path} is not a regular file (a link or a folder); it is not sent"
        if st.st_size != state.size:
            return (f"the bundle file {path} is {st.st_size} bytes, not the {state.size} it had when "
                    "spooled: it changed or was truncated")
        return None

    @contextmanager
    def locked(self) -> Iterator["SpoolEntry"]:
        """Hold this entry's lock (SpoolBusy if another run holds it)."""
        if self.dir.is_symlink() or not self.dir.is_dir():
            raise SpoolError(f"{self.bundle_id} is no longer in the spool")
        lock = _FileLock(self.dir / LOCK)
        lock.acquire()
        try:
            if not self.state_path.exists():         # removed while we waited for it
                raise SpoolError(f"{self.bundle_id} is no longer in the spool")
            yield self
        finally:
            lock.release()

    def remove(self) -> None:
        """Delete the entry (call while holding the lock): state first, so it is never half-valid."""
        self.state_path.unlink(missing_ok=True)
        fsync_dir(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class EntryView:
    """One entry as ``spool list`` and ``upload --pending`` report it (a damaged one included)."""

    entry: SpoolEntry
    state: Optional[SpoolState]
    status: str
    reason: Optional[str] = None

    @property
    def bundle_id(self) -> str:
        return self.entry.bundle_id

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"bundle_id": self.bundle_id, "status": self.status, "reason": self.reason,
                                "folder": str(self.entry.dir)}
        if self.state is not None:
            public = self.state.public()
            for name in ("case_id", "server", "size", "sha256", "offset", "attempts", "last_error",
                         "created", "held_status", "has_token"):
                data[name] = public[name]
            data["next_attempt"] = (datetime.fromtimestamp(self.state.next_attempt_ts, timezone.utc)
                                    .replace(microsecond=0).isoformat()
                                    if self.state.next_attempt_ts else None)
        if self.status == HELD:
            data["action"] = held_action(self.bundle_id, self.state)
        return data


class Spool:
    def __init__(self, root: Path | str | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age: float = DEFAULT_MAX_AGE):
        self.root = Path(root) if root is not None else default_spool_dir()
        self.max_bytes = max_bytes if max_bytes is not None else DEFAULT_MAX_BYTES
        self.max_age = max_age if max_age is not None else DEFAULT_MAX_AGE

    def ensure(self) -> Path:
        """Create the spool folder (0700) and refuse one that is a symlink or someone else's."""
        try:
            if self.root.is_symlink():
                raise SpoolError(f"spool {self.root} is a symbolic link; remove it or set {ENV}")
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            st = self.root.stat()
            if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
                raise SpoolError(f"spool {self.root} belongs to another user; set {ENV} to a "
                                 "folder of your own")
            if os.name == "posix":
                os.chmod(self.root, 0o700)
        except OSError as exc:
            raise SpoolError(f"cannot use spool {self.root} ({exc.strerror or exc}); set {ENV} "
                             "to a writable folder") from None
        return self.root

    def _entry_dirs(self) -> list[Path]:
        if not self.root.is_dir() or self.root.is_symlink():
            return []
        try:
            children = list(self.root.iterdir())
        except OSError:
            return []
        return [c for c in children if is_bundle_id(c.name) and not c.is_symlink() and c.is_dir()
                and (c / STATE).exists()]

    def views(self) -> list[EntryView]:
        """Every entry with its status, oldest first; a damaged one is held with the reason."""
        found = []
        for child in self._entry_dirs():
            entry = SpoolEntry(child)
            try:
                state = entry.load()
            except DamagedState as exc:
                found.append((0.0, child.name, EntryView(entry, None, HELD, f"{exc}")))
                continue
            except SpoolError:
                continue
            if state.status == HELD:
                view = EntryView(entry, state, HELD, state.held_reason or state.last_error)
            else:
                problem = entry.check_bundle(state)
                view = EntryView(entry, state, HELD if problem else PENDING, problem or state.last_error)
            found.append((state.created_ts, child.name, view))
        return [view for _, _, view in sorted(found, key=lambda item: (item[0], item[1]))]

    def entries(self) -> list[SpoolEntry]:
        """Entries whose state is whole, oldest first."""
        return [v.entry for v in self.views() if v.state is not None]

    def get(self, bundle_id: str) -> Optional[SpoolEntry]:
        if not is_bundle_id(bundle_id):
            return None
        entry = SpoolEntry(self.root / bundle_id)
        return entry if not entry.dir.is_symlink() and entry.state_path.is_file() else None

    def add(self, bundle_path: Path | str, server: Optional[str] = None, case_id: Optional[str] = None,
            token: Optional[str] = None, ca_bundle: Optional[str] = None) -> SpoolEntry:
        """Queue a bundle (or refresh the server, case and token of its queued entry).

        On any failure (a full disk included) nothing is left behind: no half entry,
        and no spool folder this call made.  Raises SpoolError or OSError.
        """
        bundle_path = Path(bundle_path)
        header = read_header(bundle_path)
        bundle_id = header["bundle_id"]
        if not is_bundle_id(bundle_id):
            raise SpoolError(f"{bundle_path}: bundle ID {bundle_id!r} is not valid")
        sha256, size = sha256_file(bundle_path)
        made_root = not self.root.exists()
        self.ensure()
        existing = self.get(bundle_id)
        if existing is not None:
            with existing.locked():
                try:
                    state = existing.load()
                except DamagedState:
                    state = None                       # replaced below by a fresh, whole entry
                if state is not None:
                    if state.sha256 != sha256:
                        raise SpoolError(f"a different file with bundle ID {bundle_id} is already "
                                         f"queued in {existing.dir}")
                    changes: dict[str, Any] = {k: v for k, v in (("server", server), ("case_id", case_id),
                                                                 ("token", token), ("ca_bundle", ca_bundle)) if v}
                    if changes.get("server", state.server) != state.server:
                        changes["tus_url"], changes["offset"] = None, 0     # another server: start over
                    if existing.check_bundle(state) is not None:
                        _place(bundle_path, existing.dir / state.filename, sha256)
                    existing.update(**changes)
                    if state.status == HELD:
                        existing.release()             # given again on purpose: try it again
                    return existing
        entry_dir = self.root / bundle_id
        made_dir = not entry_dir.exists()
        try:
            entry_dir.mkdir(mode=0o700, exist_ok=True)
            target = entry_dir / _safe_name(bundle_path.name, bundle_id)
            _place(bundle_path, target, sha256)
            now = time.time()
            state = SpoolState(bundle_id=bundle_id, filename=target.name, sha256=sha256, size=size,
                               server=server, case_id=case_id or header.get("case_id"), token=token,
                               ca_bundle=ca_bundle, created=_now_iso(), created_ts=now)
            entry = SpoolEntry(entry_dir)
            entry.save(state)
        except BaseException:
            if made_dir:
                shutil.rmtree(entry_dir, ignore_errors=True)
            if made_root:
                try:
                    self.root.rmdir()
                except OSError:
                    pass
            raise
        self.enforce_caps(keep=bundle_id)
        return entry

    def enforce_caps(self, keep: Optional[str] = None) -> list[str]:
        """Drop entries past the age cap, then the oldest until under the size cap; IDs dropped."""
        dropped = []
        now = time.time()
        for view in self.views():               # a damaged entry goes by its folder's age
            if view.state is None and view.bundle_id != keep and _older(view.entry.dir, now - self.max_age):
                try:
                    with view.entry.locked():
                        view.entry.remove()
                except SpoolError:
                    continue
                dropped.append(view.bundle_id)
                log.warning("dropped damaged spooled entry %s (older than %g days): %s", view.bundle_id,
                            self.max_age / 86400, view.reason)
        entries = self.entries()
        total = sum(_entry_bytes(e) for e in entries)
        for entry in entries:
            if entry.bundle_id == keep:
                continue
            try:
                state = entry.load()
            except SpoolError:
                continue
            too_old = now - state.created_ts > self.max_age
            if not too_old and total <= self.max_bytes:
                continue
            try:
                with entry.locked():
                    size = _entry_bytes(entry)
                    entry.remove()
            except SpoolError:
                continue
            total -= size
            dropped.append(entry.bundle_id)
            reason = (f"older than {self.max_age / 86400:g} days" if too_old
                      else f"spool over its {self.max_bytes} byte cap")
            log.warning("dropped spooled bundle %s (created %s, %d bytes, %d upload attempts, last "
                        "error: %s): %s", entry.bundle_id, state.created, state.size, state.attempts,
                        state.last_error or "none", reason)
        self._sweep_orphans()
        return dropped

    def _sweep_orphans(self, older_than: float = 3600.0) -> None:
        """Entry folders an interrupted ``add`` left without a state file."""
        if not self.root.is_dir():
            return
        cutoff = time.time() - older_than
        for child in self.root.iterdir():
            if is_bundle_id(child.name) and child.is_dir() and not child.is_symlink() \
                    and not (child / STATE).exists():
                try:
                    if child.stat().st_mtime < cutoff:
                        shutil.rmtree(child, ignore_errors=True)
                except OSError:
                    pass

    # ------------------------------------------------------------ intake keys

    def _keys_path(self, server: str) -> Path:
        return self.root / f"keys-{hashlib.sha256(server.encode('utf-8')).hexdigest()[:24]}.json"

    def save_keys(self, server: str, pems: list[bytes]) -> None:
        """Remember the keys ``server`` published, for a later run that cannot reach it."""
        self.ensure()
        data = {"server": server, "saved": _now_iso(),
                "recipients": [pem.decode("ascii") for pem in pems]}
        write_atomic(self._keys_path(server), json.dumps(data, indent=1).encode("utf-8"))

    def cached_keys(self, server: str) -> list[bytes]:
        """The keys ``server`` published at the last successful contact ([] when none or damaged)."""
        path = self._keys_path(server)
        try:
            with open(path, "rb") as fh:
                raw = fh.read(KEYS_LIMIT + 1)
            data = json.loads(raw.decode("utf-8")) if len(raw) <= KEYS_LIMIT else None
        except (OSError, ValueError, UnicodeDecodeError):
            return []
        if not isinstance(data, dict) or data.get("server") != server \
                or not isinstance(data.get("recipients"), list):
            return []
        return [r.encode("ascii") for r in data["recipients"]
                if isinstance(r, str) and r.isascii() and "-----BEGIN" in r]


def _safe_name(name: str, bundle_id: str) -> str:
    return name if _FILENAME.match(name) and name not in (STATE, LOCK) else f"{bundle_id}.7z"


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False


def _entry_bytes(entry: SpoolEntry) -> int:
    try:
        return entry.load().size
    except SpoolError:
        return 0


def _place(source: Path, target: Path, sha256: str) -> None:
    """Put the bundle into the entry: a hard link when the file is ours, else a checked copy."""
    if target.exists() or target.is_symlink():
        if not target.is_symlink() and target.is_file() and sha256_file(target)[0] == sha256:
            return
        target.unlink()
    try:
        if hasattr(os, "geteuid") and source.stat().st_uid == os.geteuid():
            os.link(source, target)
            return
    except OSError:
        pass                                 # another filesystem, or links not allowed: copy
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        if sha256_file(tmp)[0] != sha256:
            raise SpoolError(f"{source} changed while it was copied into the spool; try again")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
