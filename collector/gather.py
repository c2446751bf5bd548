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
import contextlib
import errno
import fnmatch
import hashlib
import json
import os
import re
import stat
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from platforms.base import Platform, resolve_inside, system_parts

from .destname import destination
from .fswalk import MAX_ENTRIES, Folder, Refused, Walk, open_folder
from .logtime import SinceFilter
from .redact import Redactor, looks_binary
from .sources import CommandSource, FileSource, GeneratedSource

CHUNK = 1024 * 1024
MIN_USEFUL = 4096          # a remaining bundle budget smaller than this is not worth a fragment
STRUCTURED_LIMIT = 8 * 1024 * 1024
GZIP_EXPANSION = 20        # a rotated .gz is decompressed up to this many times --max-file-size
GZIP_MEMBERS = 10000       # members of one .gz (logrotate writes one; concatenation a few)
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
                 payload: Optional[Any] = None):
        """``observe(artifact)`` may return an object with ``feed(bytes)`` and ``close()``
        that sees the redacted text of that artifact as it streams (health's log
        statistics), so no file is read twice.  ``payload`` (a
        :class:`collector.sevenzip.StreamingWriter`) takes each artifact's redacted bytes
        as they come, through ``open_entry``, so the payload compresses them while the
        rest is gathered and nothing is written to staging first; an artifact that fails
        midway is discarded whole (``EntryStream.discard``), never kept in part.  Without
        one (``--review``, ``check``) artifacts are written to ``staging``."""
        self.observe = observe
        self.payload = payload
        self.platform = platform
        self.staging = staging
        self.redactor = redactor
        self.limits = limits or Limits()
        self.progress = progress or (lambda label, nbytes: None)
        self.artifacts: list[Artifact] = []
        self.total = 0
        self._files: set[str] = set()                 # payload names taken (case-folded)
        self._folders: dict[str, str] = {}            # payload folder (case-folded) -> name used
        self._tried: set[str] = set()                 # resolved paths of every file tried
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
        parts = system_parts(source.path, windows=self._case_fold)
        last = parts[-1] if parts else ""
        has_glob = any(ch in last for ch in "*?[")
        if source.recursive and not has_glob:      # a whole folder
            folder_parts, pattern, folder_system = parts, "*", source.path
        elif has_glob or source.recursive:         # matching names in a folder
            folder_parts, pattern, folder_system = parts[:-1], last, _system_dirname(source.path)
        else:                                      # one named file
            folder_parts, pattern, folder_system = parts[:-1], None, _system_dirname(source.path)
        try:
            opened = self._open_source_folder(source, folder_parts, whole=pattern == "*" and not has_glob)
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
        top = opened
        walk = Walk(top.folder, owners=_owners(top.owner)) if source.recursive else None
        with top.folder:
            for rel, parent, name, st in self._entries(top.folder, walk, pattern, last, source):
                system_path = _join_system(folder_system, "/".join(rel), windows=self._case_fold)
                dest = destination(source.dest, source.user, rel[:-1] + (_strip_gz(rel[-1]),))
                self._collect_one(parent, name, st, top, rel, system_path, dest, source)
        if walk is not None:
            self._record_walk_limits(walk, source, folder_system)

    def _open_source_folder(self, source: FileSource, folder_parts: tuple[str, ...],
                            whole: bool) -> Optional["_Top"]:
        """The source's folder, resolved as the examined system would (never leaving the
        root) and opened without following any link on the way; None when absent.

        Skip when it resolves outside the tree the source declares: the user's home for
        per-user sources, the named folder's parent for a whole folder (so
        ``/var/log/jumpcloud -> /etc`` is refused), the root otherwise.  On a live system
        a per-user source's folders must belong to the home's owner or root."""
        try:
            rel = self._resolve(folder_parts)
            tree: tuple[str, ...] = ()
            if source.within:
                tree = self._resolve(system_parts(source.within, windows=self._case_fold))
            elif whole and folder_parts:
                tree = self._resolve(folder_parts[:-1])
        except Refused as exc:
            raise Skip(str(exc)) from None
        if rel[:len(tree)] != tree:
            where = source.within or _system_dirname(source.path)
            raise Skip(f"resolves to /{'/'.join(rel)}, outside {where}: a link out of it is not followed")
        base = os.path.join(self._root_real, *tree)
        owner = None
        if source.within and self.platform.live and hasattr(os, "getuid"):
            try:
                owner = os.lstat(base).st_uid
            except OSError:
                return None
        try:
            if not stat.S_ISDIR(os.lstat(os.path.join(base, *rel[len(tree):])).st_mode):
                return None
            return _Top(open_folder(base, rel[len(tree):], _owners(owner)), rel, owner)
        except Refused as exc:
            raise Skip(str(exc)) from None
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None

    def _resolve(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        """``parts`` resolved inside the root as the examined system would; Refused for a
        chain or loop of links."""
        try:
            return resolve_inside(self._root_real, parts, fold_case=self._case_fold)
        except OSError as exc:
            raise Refused(f"{exc.filename}: {exc.strerror}") from None

    def _entries(self, folder: Folder, walk: Optional[Walk], pattern: Optional[str], last: str,
                 source: FileSource) -> Iterator[tuple[tuple[str, ...], Folder, str, os.stat_result]]:
        """(relative parts, parent folder, name, lstat) of each candidate file."""
        if pattern is None:
            try:
                yield (last,), folder, last, folder.lstat(last)
            except FileNotFoundError:
                self._record(Artifact("", source.path, source.collector, "absent", "not present"))
            except (OSError, ValueError) as exc:
                self._record(Artifact("", source.path, source.collector, "failed",
                                      f"cannot read: {getattr(exc, 'strerror', None) or exc}"))
            return
        pattern_fold = pattern.lower()
        match = (lambda n: fnmatch.fnmatchcase(n.lower(), pattern_fold)) if self._case_fold \
            else (lambda n: fnmatch.fnmatchcase(n, pattern))
        if walk is not None:
            yield from (entry for entry in walk if match(entry[2]))
            return
        try:
            names, cut = folder.names(MAX_ENTRIES, match)
        except OSError:
            return
        if cut:
            self._record(Artifact("", source.path, source.collector, "skipped",
                                  f"more than {MAX_ENTRIES} names match: the rest were not read"))
        for name in names:
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
    def _collect_one(self, parent: Folder, name: str, st: os.stat_result, top: "_Top",
                     rel: tuple[str, ...], system_path: str, dest: str, source: FileSource) -> None:
        art = Artifact(dest, system_path, source.collector, "collected")
        try:
            fd, st = self._open_entry(parent, name, st, top, rel)
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
                    self._copy_gzip(fh, st.st_size, art, source)
                else:
                    self._copy_file(fh, st.st_size, art, source)
            except OSError as exc:
                art.status, art.reason = "failed", f"read error: {exc.strerror or exc}"
                self._drop(art)
                self._record(art)

    def _open_entry(self, parent: Folder, name: str, st: os.stat_result, top: "_Top",
                    rel: tuple[str, ...]) -> tuple[int, os.stat_result]:
        """An fd on the regular file an entry names, or Skip: never-collect, links out of the
        source folder, special files (never opened: a device's driver would run), duplicates,
        hard-linked files, files a per-user folder's owner does not own."""
        if is_never_collect(name):
            raise Skip("never collected: agent key or credential material")
        link = stat.S_ISLNK(st.st_mode)
        if link:
            try:
                resolved = self._resolve(top.rel + rel)
            except Refused as exc:
                raise Skip(str(exc)) from None
            if resolved[:len(top.rel)] != top.rel or len(resolved) == len(top.rel):
                raise Skip(f"symbolic link to /{'/'.join(resolved)}, outside /{'/'.join(top.rel)}: "
                           "not followed")
            if is_never_collect(resolved[-1]):
                raise Skip("never collected: link to agent key or credential material")
        else:
            resolved = top.rel + rel
            _require_regular(st)
        key = self._path_key(resolved)
        if key in self._never_real:
            raise Skip("never collected: agent key or credential material named by jcagent.conf")
        if key in self._tried:
            raise Duplicate("matched by an earlier source")          # one record per file
        self._tried.add(key)
        if link:
            fd, st = self._open_beneath(top, resolved[len(top.rel):])
        else:
            fd, st = _open_regular(*parent.at(name))
        try:
            key = (st.st_dev, st.st_ino)
            if key in self._never_inodes:
                raise Skip("never collected: same file as agent key material (hard link)")
            if key in self._seen:
                raise Duplicate("duplicate of a file already collected")
            if st.st_nlink > 1 and not self._case_fold:
                raise Skip(f"hard-linked ({st.st_nlink} names): it may be a planted link to a key or "
                           "a root-only file, so it is not read")
            if top.owner is not None and st.st_uid not in (top.owner, 0):
                raise Skip(f"owned by uid {st.st_uid}, in a folder of another user: not read")
        except Skip:
            os.close(fd)
            raise
        self._seen.add(key)
        return fd, st

    @staticmethod
    def _open_beneath(top: "_Top", rel: tuple[str, ...]) -> tuple[int, os.stat_result]:
        """The file at ``top/rel`` (a link's resolved target inside the source folder),
        opened one component at a time so nothing can be swapped in on the way, and
        checked to be a regular file before it is opened."""
        opened: list[Folder] = []
        folder = top.folder
        try:
            for part in rel[:-1]:
                folder = folder.child(part, _owners(top.owner))
                opened.append(folder)
            if rel[-1] in ("", ".", "..") or "/" in rel[-1]:
                raise Refused(f"{rel[-1]!r} is not a file name")
            _require_regular(folder.lstat(rel[-1]))
            return _open_regular(*folder.at(rel[-1]))
        except Refused as exc:
            raise Skip(str(exc)) from None
        finally:
            for f in opened:
                f.close()

    def _path_key(self, resolved: tuple[str, ...]) -> str:
        """How a resolved path is compared: case-folded on Windows, as Windows compares."""
        key = "/".join(resolved)
        return key.casefold() if self._case_fold else key

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
            stream = _Gunzip(fh, max_in=bound, max_out=bound)
            try:
                for chunk in stream:
                    tail.write(chunk)
            except (OSError, EOFError, zlib.error) as exc:
                art.status, art.reason, art.name = "failed", f"damaged gzip file: {exc}", ""
                self._record(art)
                return
            if stream.stopped:
                art.truncated = True
                art.truncation.append(f"decompression stopped after {stream.stopped} "
                                      f"({GZIP_EXPANSION}x --max-file-size): the rest of this .gz "
                                      "was not read")
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
        """Redact ``chunks`` into the payload entry (or ``staging/<art.name>``), hashing as
        it goes.

        Fails closed: if redaction raises, the partial output is discarded and the
        artifact recorded as failed, never written raw.
        """
        art.name = self._unique(art.name)
        out = self.payload.open_entry(art.name) if self.payload is not None \
            else _StagingOutput(self.staging / art.name)
        digest, size = hashlib.sha256(), 0
        try:
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
            out.close()
        except Skip:
            out.discard()
            raise
        except OSError:
            out.discard()
            raise
        except Exception as exc:  # redaction failure: fail closed
            out.discard()
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

    def _drop(self, art: Artifact) -> None:
        if art.name:
            _discard(self.staging / art.name)
            self._files.discard(art.name.casefold())

    def _unique(self, name: str) -> str:
        """A payload name no other entry has, compared case-folded (the engineer may
        extract on Windows or macOS, where ``Log.txt`` would overwrite ``log.txt``):
        a taken file name gets ``-2``...; a folder whose name a file already took gets
        one too, used for everything later put in that folder, so a file and a folder
        never claim one name."""
        parts = name.split("/")
        used: list[str] = []
        for part in parts[:-1]:
            key = "/".join(used + [part]).casefold()
            alias = self._folders.get(key)
            if alias is None:
                alias = self._free(used, part, lambda path: path in self._files)
                self._folders[key] = alias
                self._folders.setdefault("/".join(used + [alias]).casefold(), alias)
            used.append(alias)
        last = self._free(used, parts[-1], lambda path: path in self._files or path in self._folders)
        full = "/".join(used + [last])
        self._files.add(full.casefold())
        return full

    @staticmethod
    def _free(parent: list[str], part: str, taken: Callable[[str], bool]) -> str:
        candidate, n = part, 1
        while taken("/".join(parent + [candidate]).casefold()):
            n += 1
            stem, dot, ext = part.rpartition(".")
            candidate = f"{stem}-{n}.{ext}" if dot and stem else f"{part}-{n}"
        return candidate

    def _record(self, art: Artifact) -> None:
        self.artifacts.append(art)

    # ------------------------------------------------------------------ never-collect
    def _never_collect_set(self) -> tuple[set[str], set[tuple[int, int]]]:
        """The paths (resolved inside the root, as the examined system resolves them) and
        inodes of the files the platform says never to collect; what cannot be resolved
        (a NUL in jcagent.conf, a link loop) is skipped: it cannot be opened either."""
        keys, inodes = set(), set()
        for system_path in self.platform.never_collect():
            try:
                resolved = self._resolve(system_parts(system_path, windows=self._case_fold))
            except (OSError, ValueError):
                continue
            keys.add(self._path_key(resolved))
            try:
                st = os.stat(os.path.join(self._root_real, *resolved), follow_symlinks=False)
                inodes.add((st.st_dev, st.st_ino))
            except (OSError, ValueError):
                pass
        return keys, inodes


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


class _Gunzip:
    """The decompressed bytes of a gzip stream (every member), bounded every way.

    ``gzip.GzipFile`` reads without limit and skips zero padding between members one
    byte at a time (a tiny file with a sparse terabyte of zeros spins for days), so
    members and padding are handled here on zlib directly: at most ``max_in`` bytes are
    read, ``max_out`` produced and :data:`GZIP_MEMBERS` members started; ``stopped``
    then says which bound ended it.  Input is fed in slices at a moving offset, never
    re-joined, so a file of many tiny members costs linear time.
    """

    SLICE = 64 * 1024

    def __init__(self, fh, max_in: int, max_out: int):
        self.fh, self.max_in, self.max_out = fh, max_in, max_out
        self.stopped = ""

    def __iter__(self) -> Iterator[bytes]:
        read = produced = members = pos = 0
        buf = b""
        inflater = None
        while True:
            if pos >= len(buf):
                if read >= self.max_in:
                    self.stopped = f"{read} compressed bytes read"
                    return
                buf, pos = self.fh.read(min(CHUNK, self.max_in - read)), 0
                read += len(buf)
                if not buf:
                    if inflater is not None and not inflater.eof:
                        raise EOFError("compressed file ended before the end-of-stream marker")
                    return
            if inflater is None:
                start = _NON_ZERO.search(buf, pos)        # zero padding between members
                if start is None:
                    pos = len(buf)
                    continue
                pos, members = start.start(), members + 1
                if members > GZIP_MEMBERS:
                    self.stopped = f"{GZIP_MEMBERS} gzip members"
                    return
                inflater = zlib.decompressobj(wbits=31)
            piece = memoryview(buf)[pos:pos + self.SLICE]
            out = inflater.decompress(piece, CHUNK)
            pos += len(piece) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
            if inflater.eof:
                inflater = None
            if out:
                produced += len(out)
                yield out
                if produced >= self.max_out:
                    self.stopped = f"{produced} bytes"
                    return


_NON_ZERO = re.compile(rb"[^\x00]")


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


@dataclass(frozen=True)
class _Top:
    """A source's open folder, its path resolved inside the root, and the uid its files
    must belong to (per-user sources on a live system; None: any)."""

    folder: Folder
    rel: tuple[str, ...]
    owner: Optional[int]


def _require_regular(st: os.stat_result) -> None:
    """Skip anything but a regular file before it is opened: opening a device runs its
    driver on this machine (a planted watchdog node would arm it)."""
    if stat.S_ISREG(st.st_mode):
        return
    kind = ("FIFO" if stat.S_ISFIFO(st.st_mode) else "device" if stat.S_ISCHR(st.st_mode)
            or stat.S_ISBLK(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
            else "directory" if stat.S_ISDIR(st.st_mode) else "special file")
    raise Skip(f"not a regular file ({kind}): not read")


def _strip_gz(name: str) -> str:
    """A rotated ``x.log.1.gz`` goes into the bundle decompressed, as ``x.log.1``."""
    return name[:-3] if name.lower().endswith(".gz") else name


class _StagingOutput:
    """An artifact written to a staging file (no payload: ``--review``, ``check``)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = open(path, "wb")

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def close(self) -> None:
        self._fh.close()

    def discard(self) -> None:
        self._fh.close()
        _discard(self.path)


def _discard(path: Path) -> None:
    """Remove a half-written staging file; a name that is no file (or no longer) is fine."""
    with contextlib.suppress(OSError):
        path.unlink()
