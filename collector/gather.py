"""Runs the declared sources under the safety rules, streaming artifacts into staging.

This module is the only place that reads the examined system's files or runs its
commands for the bundle, so every rule of DESIGN.md "Safety rules of gathering"
lives here once:

* never-collect names, suffixes, platform paths and their inodes win over every include;
* a symlink is followed only when its target stays inside the folder the source names;
* only regular files are read (opened ``O_NOFOLLOW | O_NONBLOCK`` so a FIFO cannot hang us);
* a file is read up to the size seen at open; the newest ``max_file_size`` bytes are kept;
* ``--since`` trims timestamped logs; every truncation is recorded in the manifest;
* every command has a deadline; everything is redacted before it touches staging;
* memory stays bounded: files stream through in chunks.
"""
from __future__ import annotations

import codecs
import errno
import fnmatch
import gzip
import hashlib
import json
import os
import stat
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from platforms.base import Platform, system_parts

from .destname import destination
from .fswalk import MAX_ENTRIES, Folder, Refused, Walk, open_folder
from .logtime import SinceFilter
from .redact import Redactor, looks_binary
from .sources import CommandSource, FileSource, GeneratedSource

CHUNK = 1024 * 1024
MIN_USEFUL = 4096          # a remaining bundle budget smaller than this is not worth a fragment
STRUCTURED_LIMIT = 8 * 1024 * 1024
GZIP_EXPANSION = 20        # a rotated .gz is decompressed up to this many times --max-file-size
MiB = 1024 * 1024

# The never-collect list (agent-footprint.md): agent identity and credential drops.
NEVER_NAMES = frozenset({"client.key", "client.crt", "ca.crt", "jumpcloud-securetoken-creds.txt"})
NEVER_PREFIXES = ("jumpcloud-device-trust-keychain-db",)
NEVER_SUFFIXES = (".key", ".pem", ".p12", ".pfx")

_O_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


class Skip(Exception):
    """A candidate file that is deliberately not collected; the message says why."""


class Duplicate(Skip):
    """A file already collected through another source: not recorded again."""


@dataclass
class Limits:
    max_file_size: int = 50 * MiB
    max_bundle_size: Optional[int] = 1024 * MiB
    since: Optional[datetime] = None


@dataclass
class Artifact:
    """One manifest entry: what was collected (or not) from one source, and why."""

    name: str                 # path inside the payload ("" when nothing was written)
    source: str               # system path or command line
    collector: str
    status: str               # collected | skipped | absent | failed
    reason: str = ""
    size: int = 0
    sha256: str = ""
    source_size: Optional[int] = None
    truncated: bool = False
    truncation: list[str] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, "", [], {})
                or k in ("name", "status", "size")}


def is_never_collect(name: str) -> bool:
    low = name.lower()
    return (low in NEVER_NAMES or low.endswith(NEVER_SUFFIXES)
            or low.startswith(NEVER_PREFIXES))


class Gatherer:
    """Collects sources of one platform into ``staging`` through one :class:`Redactor`."""

    def __init__(self, platform: Platform, staging: Path, redactor: Redactor,
                 limits: Limits | None = None,
                 progress: Optional[Callable[[str, int], None]] = None,
                 observe: Optional[Callable[[Artifact], Optional[object]]] = None,
                 finished: Optional[Callable[[Path, str], None]] = None):
        """``observe(artifact)`` may return an object with ``feed(bytes)`` and ``close()``
        that sees the redacted text of that artifact as it streams (health's log
        statistics), so no file is read twice.  ``finished(path, name)`` is told of
        each staging file once it is complete and will not change (the payload
        compresses it while the next one is gathered); a file that failed midway is
        removed instead, never handed on."""
        self.observe = observe
        self.finished = finished
        self.platform = platform
        self.staging = staging
        self.redactor = redactor
        self.limits = limits or Limits()
        self.progress = progress or (lambda label, nbytes: None)
        self.artifacts: list[Artifact] = []
        self.total = 0
        self._names: set[str] = set()
        self._tried: set[str] = set()                  # real paths of every file tried
        self._seen: set[tuple[int, int]] = set()      # (device, inode) of every file opened
        self._root_real = os.path.realpath(platform.root)
        self._case_fold = platform.family == "windows"
        self._never_real, self._never_inodes = self._never_collect_set()

    # ------------------------------------------------------------------ public
    def run(self, sources: Iterable) -> list[Artifact]:
        for source in sources:
            if isinstance(source, FileSource):
                self.collect_files(source)
            elif isinstance(source, CommandSource):
                self.collect_command(source)
            elif isinstance(source, GeneratedSource):
                self.collect_generated(source)
            else:
                raise TypeError(f"unknown source type {type(source).__name__}")
        return self.artifacts

    def collect_files(self, source: FileSource) -> None:
        parts = system_parts(source.path)
        last = parts[-1] if parts else ""
        has_glob = any(ch in last for ch in "*?[")
        if source.recursive and not has_glob:      # a whole folder
            folder_parts, pattern, folder_system = parts, "*", source.path
        elif has_glob or source.recursive:         # matching names in a folder
            folder_parts, pattern, folder_system = parts[:-1], last, _system_dirname(source.path)
        else:                                      # one named file
            folder_parts, pattern, folder_system = parts[:-1], None, _system_dirname(source.path)
        try:
            opened = self._open_source_folder(source, folder_parts)
        except Skip as why:
            self._record(Artifact("", source.path, source.collector, "skipped", str(why)))
            return
        except PermissionError as exc:
            self._record(Artifact("", source.path, source.collector, "failed",
                                  f"permission denied: {exc.strerror}; run as root/Administrator"))
            return
        if opened is None:
            if pattern is None:
                self._record(Artifact("", source.path, source.collector, "absent", "not present"))
            return
        folder, owner = opened
        walk = Walk(folder, owners=_owners(owner)) if source.recursive else None
        with folder:
            for rel, parent, name, st in self._entries(folder, walk, pattern, last, source):
                system_path = _join_system(folder_system, "/".join(rel), windows=self._case_fold)
                dest = destination(source.dest, source.user, rel)
                self._collect_one(parent, name, st, folder, system_path, dest, source, owner)
        if walk is not None:
            self._record_walk_limits(walk, source, folder_system)

    def _open_source_folder(self, source: FileSource,
                            folder_parts: tuple[str, ...]) -> Optional[tuple[Folder, Optional[int]]]:
        """The source's folder, opened without following any link on the way, and the uid
        everything in it must belong to (per-user sources on a live system); None when
        absent.  Skip when it resolves outside the root or outside the folder the source
        must stay within (a user's home): a planted folder link is never followed."""
        root = self.platform.root
        real = os.path.realpath(root.joinpath(*folder_parts))
        if not self.platform.live and not _is_within(real, self._root_real):
            raise Skip(f"{root.joinpath(*folder_parts)} resolves to {real}, outside the root "
                       f"{self._root_real}: not followed")
        base, owner = real, None
        if source.within:
            base = os.path.realpath(root.joinpath(*system_parts(source.within)))
            if not self.platform.live and not _is_within(base, self._root_real):
                raise Skip(f"{source.within} resolves to {base}, outside the root: not followed")
            if real != base and not _is_within(real, base):
                raise Skip(f"resolves to {real}, outside {source.within}: a link out of the user's "
                           "folder is not followed")
            if self.platform.live and hasattr(os, "getuid"):
                try:
                    owner = os.stat(base).st_uid
                except OSError:
                    return None
        if not os.path.isdir(real):
            return None
        rel = () if real == base else tuple(os.path.relpath(real, base).split(os.sep))
        try:
            return open_folder(base, rel, _owners(owner)), owner
        except Refused as exc:
            raise Skip(str(exc)) from None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _entries(self, folder: Folder, walk: Optional[Walk], pattern: Optional[str], last: str,
                 source: FileSource) -> Iterator[tuple[tuple[str, ...], Folder, str, os.stat_result]]:
        """(relative parts, parent folder, name, lstat) of each candidate file."""
        if pattern is None:
            try:
                yield (last,), folder, last, folder.lstat(last)
            except FileNotFoundError:
                self._record(Artifact("", source.path, source.collector, "absent", "not present"))
            except OSError as exc:
                self._record(Artifact("", source.path, source.collector, "failed",
                                      f"cannot read: {exc.strerror or exc}"))
            return
        pattern_fold = pattern.lower()
        match = (lambda n: fnmatch.fnmatchcase(n.lower(), pattern_fold)) if self._case_fold \
            else (lambda n: fnmatch.fnmatchcase(n, pattern))
        if walk is not None:
            yield from (entry for entry in walk if match(entry[2]))
            return
        try:
            names = folder.names(MAX_ENTRIES)
        except OSError:
            return
        for name in names:
            if match(name):
                try:
                    yield (name,), folder, name, folder.lstat(name)
                except OSError:
                    continue

    def _record_walk_limits(self, walk: Walk, source: FileSource, folder_system: str) -> None:
        """What a walk left out, in the manifest: too deep, too many, refused folders."""
        def skipped(reason: str) -> None:
            self._record(Artifact("", source.path, source.collector, "skipped", reason))
        if walk.too_deep:
            first = _join_system(folder_system, "/".join(walk.first_too_deep), windows=self._case_fold)
            skipped(f"{walk.too_deep} folder(s) nested deeper than {walk.max_depth} levels were not "
                    f"entered (first: {first})")
        if walk.cut:
            skipped(f"more than {walk.max_entries} entries: the rest of this folder was not read")
        for reason in walk.refused:
            skipped(reason)

    def collect_command(self, source: CommandSource) -> None:
        cmdline = " ".join(source.argv)
        dest = destination(f"commands/{source.dest}")
        self.progress(f"running {source.argv[0]}", 0)
        result = self.platform.runner(source.argv, timeout=source.timeout)
        if result.error and not result.timed_out and result.returncode is None:
            status = "absent" if "not found" in result.error else "skipped"
            self._record(Artifact("", cmdline, source.collector, status, result.error))
            return
        art = Artifact(dest, cmdline, source.collector, "collected")
        if result.timed_out:
            art.status, art.reason = "failed", result.error or "timed out"
            art.truncated = True
            art.truncation.append("output up to the deadline only")
        elif result.returncode:
            art.errors.append(f"exit status {result.returncode}")
        _note_cut(art, len(result.stdout), result.stdout_cut)
        self._write(art, [result.stdout], structured=None)
        if result.stderr.strip():
            err = Artifact(dest + ".stderr", cmdline, source.collector, "collected")
            _note_cut(err, len(result.stderr), result.stderr_cut)
            self._write(err, [result.stderr], structured=None)

    def collect_generated(self, source: GeneratedSource) -> None:
        dest = destination(source.dest)
        art = Artifact(dest, "generated", source.collector, "collected")
        try:
            data = source.produce()
        except Exception as exc:  # a fact that cannot be computed is recorded, not fatal
            art.status, art.reason, art.name = "failed", f"{type(exc).__name__}: {exc}", ""
            self._record(art)
            return
        blob = json.dumps(data, indent=2, default=str).encode("utf-8") + b"\n"
        self._write(art, [blob], structured=None)

    def attach(self, path: str) -> None:
        """A file the admin names with ``--attach``: from the live machine, not the root.

        Text is redacted like every log; a binary file (a screenshot) cannot be, and is
        included as is because the admin chose it explicitly; the manifest says so.
        """
        name = os.path.basename(path)
        art = Artifact(destination("attachments", names=(name,)), path, "attachments", "collected")
        try:
            fd, st = _open_regular(path, follow=True)
        except Skip as why:
            art.status, art.reason, art.name = "failed", str(why), ""
            self._record(art)
            return
        with os.fdopen(fd, "rb") as fh:
            art.source_size = st.st_size
            if st.st_size > self.limits.max_file_size:
                art.status, art.name = "failed", ""
                art.reason = f"larger than --max-file-size ({st.st_size} > {self.limits.max_file_size} bytes)"
                self._record(art)
                return
            head = fh.read(8192)
            fh.seek(0)
            if looks_binary(head):
                art.errors.append("binary attachment included as given: not redacted")
                self._write(art, _read_upto(fh, st.st_size), structured=None, raw=True)
            else:
                self._write(art, _read_upto(fh, st.st_size), structured=None)

    # ------------------------------------------------------------------ files
    def _collect_one(self, parent: Folder, name: str, st: os.stat_result, top: Folder,
                     system_path: str, dest: str, source: FileSource, owner: Optional[int]) -> None:
        art = Artifact(dest, system_path, source.collector, "collected")
        try:
            fd, st = self._open_entry(parent, name, st, top, owner)
        except Duplicate:
            return
        except Skip as why:
            art.status, art.reason, art.name = "skipped", str(why), ""
            self._record(art)
            return
        except PermissionError as exc:
            art.status, art.name = "failed", ""
            art.reason = f"permission denied: {exc.strerror}; run as root/Administrator to collect it"
            self._record(art)
            return
        except OSError as exc:
            art.status, art.reason, art.name = "failed", f"cannot open: {exc.strerror or exc}", ""
            self._record(art)
            return
        art.source_size = st.st_size
        with os.fdopen(fd, "rb") as fh:
            try:
                if name.lower().endswith(".gz"):
                    art.name = dest[:-3]
                    self._copy_gzip(fh, st.st_size, art, source)
                else:
                    self._copy_file(fh, st.st_size, art, source)
            except OSError as exc:
                art.status, art.reason = "failed", f"read error: {exc.strerror or exc}"
                self._drop(art)
                self._record(art)

    def _open_entry(self, parent: Folder, name: str, st: os.stat_result, top: Folder,
                    owner: Optional[int]) -> tuple[int, os.stat_result]:
        """An fd on the regular file an entry names, or Skip: never-collect, links out of the
        source folder, duplicates, files a per-user folder's owner does not own."""
        if is_never_collect(name):
            raise Skip("never collected: agent key or credential material")
        real = os.path.realpath(os.path.join(parent.path, name))
        if stat.S_ISLNK(st.st_mode):
            if not _is_within(real, top.path):
                raise Skip(f"symbolic link to {real}, outside {top.path}: not followed")
            if is_never_collect(os.path.basename(real)):
                raise Skip("never collected: link to agent key or credential material")
        if os.path.normcase(real) in self._never_real:
            raise Skip("never collected: agent key or credential material named by jcagent.conf")
        if os.path.normcase(real) in self._tried:
            raise Duplicate("matched by an earlier source")          # one record per file
        self._tried.add(os.path.normcase(real))
        if stat.S_ISLNK(st.st_mode):
            fd, st = self._open_beneath(top, tuple(os.path.relpath(real, top.path).split(os.sep)), owner)
        else:
            fd, st = _open_regular(*parent.at(name))
        try:
            key = (st.st_dev, st.st_ino)
            if key in self._never_inodes:
                raise Skip("never collected: same file as agent key material (hard link)")
            if key in self._seen:
                raise Duplicate("duplicate of a file already collected")
            if owner is not None and not (st.st_uid == owner or (st.st_uid == 0 and st.st_nlink == 1)):
                raise Skip(f"owned by uid {st.st_uid}{' and hard-linked' if st.st_nlink > 1 else ''}, "
                           "in a folder of another user: not read")
        except Skip:
            os.close(fd)
            raise
        self._seen.add(key)
        return fd, st

    @staticmethod
    def _open_beneath(top: Folder, rel: tuple[str, ...], owner: Optional[int]) -> tuple[int, os.stat_result]:
        """The file at ``top/rel`` (a link's resolved target inside the source folder),
        opened one component at a time so nothing can be swapped in on the way."""
        opened: list[Folder] = []
        folder = top
        try:
            for part in rel[:-1]:
                folder = folder.child(part, _owners(owner))
                opened.append(folder)
            return _open_regular(*folder.at(rel[-1]))
        except Refused as exc:
            raise Skip(str(exc)) from None
        finally:
            for f in opened:
                f.close()

    def _budget(self, size: int) -> Optional[int]:
        """The bytes this file may add: its cap, or what the bundle cap leaves.  None when the
        bundle cap leaves less than a useful fragment (the file is then skipped)."""
        cap = self.limits.max_file_size
        if self.limits.max_bundle_size is not None:
            left = self.limits.max_bundle_size - self.total
            if left < min(MIN_USEFUL, size, cap) or left <= 0:
                return None
            cap = min(cap, left)
        return cap

    def _copy_file(self, fh, size: int, art: Artifact, source: FileSource) -> None:
        head = fh.read(8192)
        if looks_binary(head) and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            self._skip_binary(art)
            return
        if source.redact and size <= STRUCTURED_LIMIT:
            data = head + fh.read(size - len(head))
            data = data[:size]
            self._write(art, [data], structured=source.redact)
            return
        cap = self._budget(size)
        if cap is None:
            self._cap_reached(art)
            return
        utf16 = _utf16_codec(head)
        start = 0
        if size > cap:
            start = size - cap
            if utf16:
                start += start % 2
            art.truncated = True
            art.truncation.append(f"kept the newest {size - start} of {size} bytes (--max-file-size)")
        fh.seek(start)
        chunks = _read_upto(fh, size - start)
        if utf16:
            chunks = _transcode(chunks, utf16, strip_bom=start == 0)
        if start:
            chunks = _after_first_newline(chunks)
        self._write_text_log(art, chunks, source)

    def _copy_gzip(self, fh, size: int, art: Artifact, source: FileSource) -> None:
        """A rotated ``.gz`` log: decompressed once (so it can be redacted and trimmed), the
        newest bytes kept; where the tail starts is known only at the end of the stream, so
        it passes through a ring file of at most the cap (see :class:`_TailSpool`)."""
        cap = self._budget(MIN_USEFUL)
        if cap is None:
            self._cap_reached(art)
            return
        bound = GZIP_EXPANSION * self.limits.max_file_size
        with _TailSpool(cap, self.staging) as tail:
            try:
                for chunk in _gunzip(fh, size):
                    tail.write(chunk)
                    if tail.total >= bound:
                        art.truncated = True
                        art.truncation.append(
                            f"decompression stopped after {tail.total} bytes ({GZIP_EXPANSION}x "
                            "--max-file-size): the rest of this .gz was not read")
                        break
            except (OSError, EOFError, zlib.error) as exc:
                art.status, art.reason, art.name = "failed", f"damaged gzip file: {exc}", ""
                self._record(art)
                return
            chunks: Iterable[bytes] = tail.chunks()
            if tail.total > cap:
                art.truncated = True
                art.truncation.append(f"kept the newest {cap} of {tail.total} uncompressed bytes "
                                      "(--max-file-size)")
                chunks = _after_first_newline(chunks)
            first = True

            def checked(it):
                nonlocal first
                for c in it:
                    if first and looks_binary(c[:8192]):
                        raise Skip("binary")
                    first = False
                    yield c
            try:
                self._write_text_log(art, checked(chunks), source)
            except Skip:
                self._drop(art)
                self._skip_binary(art)

    def _write_text_log(self, art: Artifact, chunks: Iterable[bytes], source: FileSource) -> None:
        since = self.limits.since if source.timestamped else None
        filt = SinceFilter(since) if since else None
        if filt:
            chunks = _through(chunks, filt)
        self._write(art, chunks, structured=None)
        if filt and art.status == "collected":
            if not filt.saw_timestamp:
                art.errors.append("no timestamps recognised: kept whole (within the size cap)")
            elif filt.dropped_bytes:
                art.truncated = True
                art.truncation.append(f"dropped {filt.dropped_bytes} bytes older than --since")

    def _skip_binary(self, art: Artifact) -> None:
        self.redactor.skipped_binary(art.name)
        art.status, art.name = "skipped", ""
        art.reason = "binary content: cannot be redacted, so it is left out"
        self._record(art)

    def _cap_reached(self, art: Artifact) -> None:
        art.status, art.name = "skipped", ""
        art.reason = "bundle size cap reached (--max-bundle-size)"
        self._record(art)

    # ------------------------------------------------------------------ writing
    def _write(self, art: Artifact, chunks: Iterable[bytes], structured: Optional[str],
               raw: bool = False) -> None:
        """Redact ``chunks`` into ``staging/<art.name>``, hashing as it goes.

        Fails closed: if redaction raises, the partial file is removed and the
        artifact recorded as failed, never written raw.
        """
        art.name = self._unique(art.name)
        out_path = self.staging / art.name
        out_path.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        try:
            with open(out_path, "wb") as out:
                def emit(data: bytes) -> None:
                    nonlocal size
                    if data:
                        out.write(data)
                        digest.update(data)
                        size += len(data)
                if raw:
                    for chunk in chunks:
                        emit(chunk)
                        self.progress(art.source, len(chunk))
                elif structured:
                    blob = b"".join(chunks)
                    emit(self.redactor.structured(art.name, blob, structured))
                    self.progress(art.source, len(blob))
                else:
                    scrubber = self.redactor.text_stream(art.name)
                    watcher = self.observe(art) if self.observe else None
                    for chunk in chunks:
                        clean = scrubber.feed(chunk)
                        emit(clean)
                        if watcher and clean:
                            watcher.feed(clean)
                        self.progress(art.source, len(chunk))
                    tail = scrubber.close()
                    emit(tail)
                    if watcher:
                        if tail:
                            watcher.feed(tail)
                        watcher.close()
                    art.redactions = {k: v for k, v in scrubber.hits.items() if v}
        except Skip:
            out_path.unlink(missing_ok=True)
            raise
        except OSError:
            out_path.unlink(missing_ok=True)
            raise
        except Exception as exc:  # redaction failure: fail closed
            out_path.unlink(missing_ok=True)
            self.redactor.failed(art.name, f"{type(exc).__name__}: {exc}")
            art.status, art.name = "failed", ""
            art.reason = f"redaction failed ({type(exc).__name__}); left out rather than sent unredacted"
            self._record(art)
            return
        if structured:
            art.redactions = dict(self.redactor.artifact_hits(art.name))
        art.size, art.sha256 = size, digest.hexdigest()
        self.total += size
        self._record(art)
        if self.finished is not None:
            self.finished(out_path, art.name)

    def _drop(self, art: Artifact) -> None:
        if art.name:
            (self.staging / art.name).unlink(missing_ok=True)
            self._names.discard(art.name.casefold())

    def _unique(self, name: str) -> str:
        """``name``, or ``name-2``... when taken: compared case-folded, since the engineer
        may extract on Windows or macOS, where ``Log.txt`` would overwrite ``log.txt``."""
        candidate, n = name, 1
        while candidate.casefold() in self._names:
            n += 1
            stem, dot, ext = name.rpartition(".")
            candidate = f"{stem}-{n}.{ext}" if dot and "/" not in ext else f"{name}-{n}"
        self._names.add(candidate.casefold())
        return candidate

    def _record(self, art: Artifact) -> None:
        self.artifacts.append(art)

    # ------------------------------------------------------------------ never-collect
    def _never_collect_set(self) -> tuple[set[str], set[tuple[int, int]]]:
        reals, inodes = set(), set()
        for system_path in self.platform.never_collect():
            local = self.platform.path(system_path)
            real = os.path.realpath(local)
            reals.add(os.path.normcase(real))
            try:
                st = os.stat(real)
                inodes.add((st.st_dev, st.st_ino))
            except OSError:
                pass
        return reals, inodes


# ---------------------------------------------------------------------- helpers


def _open_regular(path: str, dir_fd: Optional[int] = None,
                  follow: bool = False) -> tuple[int, os.stat_result]:
    """An fd on a regular file, or Skip; O_NONBLOCK keeps a FIFO from blocking the open.
    ``path`` is relative to ``dir_fd`` when one is given; links are not followed unless
    ``follow`` (a file the admin names with ``--attach``)."""
    flags = _O_FLAGS & ~getattr(os, "O_NOFOLLOW", 0) if follow else _O_FLAGS
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Skip("symbolic link: not followed") from None
        if isinstance(exc, FileNotFoundError):
            raise Skip("vanished before it could be read") from None
        if exc.errno == errno.ENXIO:
            raise Skip("not a regular file (socket or FIFO): not read") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = ("FIFO" if stat.S_ISFIFO(st.st_mode) else "device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
                else "directory" if stat.S_ISDIR(st.st_mode) else "special file")
        raise Skip(f"not a regular file ({kind}): not read")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd, st


def _read_upto(fh, limit: int) -> Iterator[bytes]:
    """Chunks of ``fh`` up to ``limit`` bytes: a growing file is copied as seen at open."""
    left = limit
    while left > 0:
        chunk = fh.read(min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def _gunzip(fh, size: int) -> Iterator[bytes]:
    with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
        while chunk := gz.read(CHUNK):
            yield chunk


class _TailSpool:
    """The newest ``cap`` bytes of a stream of unknown length, in one pass: a private
    temporary file (in staging, unnamed where the OS allows) written as a ring, so disk
    use stays at most ``cap`` and memory at one chunk.  ``total`` counts every byte."""

    def __init__(self, cap: int, folder: Path):
        self.cap, self.total = cap, 0
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".tail-")

    def __enter__(self) -> "_TailSpool":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        if len(view) > self.cap:                 # only its end can be kept
            self.total += len(view) - self.cap
            view = view[-self.cap:]
        while view:
            at = self.total % self.cap
            piece = view[: self.cap - at]
            self._file.seek(at)
            self._file.write(piece)
            self.total += len(piece)
            view = view[len(piece):]

    def chunks(self) -> Iterator[bytes]:
        """The kept bytes, oldest first."""
        if self.total <= self.cap:
            spans = [(0, self.total)]
        else:
            at = self.total % self.cap
            spans = [(at, self.cap), (0, at)]
        for start, stop in spans:
            self._file.seek(start)
            yield from _read_upto(self._file, stop - start)


def _after_first_newline(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Drop the partial first line left by a tail cut."""
    cutting = True
    for chunk in chunks:
        if cutting:
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            chunk, cutting = chunk[nl + 1:], False
        yield chunk


def _through(chunks: Iterable[bytes], filt) -> Iterator[bytes]:
    for chunk in chunks:
        yield filt.feed(chunk)
    yield filt.close()


def _utf16_codec(head: bytes) -> Optional[str]:
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le"
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    return None


def _transcode(chunks: Iterable[bytes], codec: str, strip_bom: bool) -> Iterator[bytes]:
    """UTF-16 Windows logs to UTF-8, so redaction and --since see ordinary text."""
    decoder = codecs.getincrementaldecoder(codec)(errors="replace")
    first = True
    for chunk in chunks:
        text = decoder.decode(chunk)
        if first and strip_bom:
            text = text.lstrip("\ufeff")
        first = False
        yield text.encode("utf-8")
    yield decoder.decode(b"", final=True).encode("utf-8")


def _is_within(path: str, folder: str) -> bool:
    folder = folder.rstrip(os.sep) + os.sep
    return os.path.normcase(path).startswith(os.path.normcase(folder))


def _system_dirname(system_path: str) -> str:
    """The folder part of a system path, in its own style (``/`` or ``\\``)."""
    head = system_path.rstrip("/\\")
    cut = max(head.rfind("/"), head.rfind("\\"))
    return head[:cut] if cut > 0 else head[: cut + 1]


def _join_system(folder: str, rel: str, windows: bool) -> str:
    sep = "\\" if windows else "/"
    rel = rel.replace("/", sep).replace("\\", sep)
    return folder.rstrip("/\\") + sep + rel


def _owners(owner: Optional[int]) -> Optional[frozenset[int]]:
    """Who may own the folders of a per-user source: its user and root (None: anyone)."""
    return None if owner is None else frozenset({owner, 0})


def _note_cut(art: Artifact, kept: int, dropped: int) -> None:
    """Record that a command's output was cut at the runner's bound."""
    if dropped:
        art.truncated = True
        art.truncation.append(f"output cut after {kept} bytes; {dropped} more bytes were dropped")
