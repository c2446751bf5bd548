"""The durable queue of bundles waiting to be uploaded.

Each entry is a private folder named by the bundle ID::

    <spool>/<BUNDLE-ID>/<BUNDLE-ID>.7z   the bundle (hard link to the output when safe, else a copy)
    <spool>/<BUNDLE-ID>/state.json       server, case, token, tus URL, offset, attempts, last error
    <spool>/<BUNDLE-ID>/lock             held (flock / msvcrt) by the run that is sending it

``state.json`` is written last when an entry is made and always atomically
(temporary file, fsync, rename, fsync of the folder), so after a crash or a
reboot an entry is either whole or ignored, and the next run resumes from the
tus URL and offset it holds.  The state keeps the upload token so that a later
run (``jcdiag upload --pending``, a scheduled ``collect --upload`` for another
case) can finish it; the folder is 0700 and the file 0600.

An entry leaves the spool only when its upload is confirmed (see
``collector.upload``); size and age caps drop the oldest entries, with a logged
warning, so a machine that never reaches the server does not fill its disk.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from .durable import fsync_dir, write_atomic
from .filelock import try_lock, unlock
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

from .bundle import read_header, sha256_file
from .ids import is_bundle_id

log = logging.getLogger("jcdiag.spool")

ENV = "JCDIAG_SPOOL"
STATE = "state.json"
LOCK = "lock"
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
DEFAULT_MAX_AGE = 30 * 86400.0


class SpoolError(Exception):
    """The spool cannot be used; the message names the folder and the fix."""


class SpoolBusy(SpoolError):
    """Another run holds this entry's lock (it is sending the bundle now)."""


def default_spool_dir() -> Path:
    """The spool folder for this OS and user, ``$JCDIAG_SPOOL`` first.

    Root (or Administrator) spools system-wide so scheduled runs share it; other
    users get a folder of their own.
    """
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    if sys.platform.startswith("win"):
        program_data = os.environ.get("ProgramData") or r"C:\ProgramData"
        return Path(program_data) / "jcdiag" / "spool"
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if sys.platform == "darwin":
        base = Path("/Library/Application Support") if is_root else \
            Path.home() / "Library" / "Application Support"
        return base / "jcdiag" / "spool"
    if is_root and os.access("/var/lib", os.W_OK):
        return Path("/var/lib/jcdiag/spool")
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "jcdiag" / "spool"


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


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

    @classmethod
    def from_dict(cls, raw: dict) -> "SpoolState":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def public(self) -> dict:
        """What may be printed: everything but the token."""
        data = asdict(self)
        data.pop("token", None)
        return data




class _FileLock:
    """An exclusive, non-blocking lock on a file; the OS drops it if the process dies."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = None

    def acquire(self) -> None:
        self.fh = open(self.path, "a+b")
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
        try:
            return SpoolState.from_dict(json.loads(self.state_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise SpoolError(f"{self.dir}: no longer in the spool") from None
        except (ValueError, TypeError) as exc:
            raise SpoolError(f"{self.state_path}: damaged ({exc}); remove the folder to drop it") from None

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

    @contextmanager
    def locked(self) -> Iterator["SpoolEntry"]:
        """Hold this entry's lock (SpoolBusy if another run holds it)."""
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


class Spool:
    def __init__(self, root: Path | str | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age: float = DEFAULT_MAX_AGE):
        self.root = Path(root) if root is not None else default_spool_dir()
        self.max_bytes = max_bytes
        self.max_age = max_age

    def ensure(self) -> Path:
        """Create the spool folder (0700) and refuse one that is a symlink or someone else's."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.root.is_symlink():
                raise SpoolError(f"spool {self.root} is a symbolic link; remove it or set {ENV}")
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

    def entries(self) -> list[SpoolEntry]:
        """Whole entries, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink() and is_bundle_id(child.name) \
                    and (child / STATE).is_file():
                try:
                    found.append((SpoolEntry(child).load().created_ts, child.name, SpoolEntry(child)))
                except SpoolError:
                    continue
        return [entry for _, _, entry in sorted(found, key=lambda item: (item[0], item[1]))]

    def get(self, bundle_id: str) -> Optional[SpoolEntry]:
        entry = SpoolEntry(self.root / bundle_id)
        return entry if is_bundle_id(bundle_id) and entry.state_path.is_file() else None

    def add(self, bundle_path: Path | str, server: Optional[str] = None, case_id: Optional[str] = None,
            token: Optional[str] = None, ca_bundle: Optional[str] = None) -> SpoolEntry:
        """Queue a bundle (or refresh the server, case and token of its queued entry)."""
        bundle_path = Path(bundle_path)
        header = read_header(bundle_path)
        bundle_id = header["bundle_id"]
        if not is_bundle_id(bundle_id):
            raise SpoolError(f"{bundle_path}: bundle ID {bundle_id!r} is not valid")
        sha256, size = sha256_file(bundle_path)
        self.ensure()
        existing = self.get(bundle_id)
        if existing is not None:
            with existing.locked():
                state = existing.load()
                if state.sha256 != sha256:
                    raise SpoolError(f"a different file with bundle ID {bundle_id} is already "
                                     f"queued in {existing.dir}")
                changes = {k: v for k, v in (("server", server), ("case_id", case_id),
                                             ("token", token), ("ca_bundle", ca_bundle)) if v}
                if changes.get("server", state.server) != state.server:
                    changes["tus_url"], changes["offset"] = None, 0     # another server: start over
                existing.update(**changes)
            return existing
        entry_dir = self.root / bundle_id
        entry_dir.mkdir(mode=0o700, exist_ok=True)
        target = entry_dir / bundle_path.name
        _place(bundle_path, target, sha256)
        now = time.time()
        state = SpoolState(bundle_id=bundle_id, filename=target.name, sha256=sha256, size=size,
                           server=server, case_id=case_id or header.get("case_id"), token=token,
                           ca_bundle=ca_bundle, created=_now_iso(), created_ts=now)
        entry = SpoolEntry(entry_dir)
        entry.save(state)
        self.enforce_caps(keep=bundle_id)
        return entry

    def enforce_caps(self, keep: Optional[str] = None) -> list[str]:
        """Drop entries past the age cap, then the oldest until under the size cap; IDs dropped."""
        dropped = []
        entries = self.entries()
        now = time.time()
        total = sum(_entry_bytes(e) for e in entries)
        for entry in entries:
            if entry.bundle_id == keep:
                continue
            state = entry.load()
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
        """Folders an interrupted ``add`` left without a state file."""
        if not self.root.is_dir():
            return
        cutoff = time.time() - older_than
        for child in self.root.iterdir():
            if child.is_dir() and not (child / STATE).exists():
                try:
                    if child.stat().st_mtime < cutoff:
                        shutil.rmtree(child, ignore_errors=True)
                except OSError:
                    pass


def _entry_bytes(entry: SpoolEntry) -> int:
    try:
        return entry.load().size
    except SpoolError:
        return 0


def _place(source: Path, target: Path, sha256: str) -> None:
    """Put the bundle into the entry: a hard link when the file is ours, else a checked copy."""
    if target.exists():
        if sha256_file(target)[0] == sha256:
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
