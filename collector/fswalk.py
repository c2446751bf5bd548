"""Opening and walking the examined system's folders so that nobody can redirect the reads.

jcdiag reads as root inside folders that ordinary users own (their per-user agent
logs) and inside disk images anyone may have written.  Such a user can plant a link,
swap a folder for a link between a check and an open, or nest folders thousands
deep.  So, on systems that have ``dir_fd`` (Linux, macOS):

* a folder is opened component by component from a trusted base, each with
  ``O_NOFOLLOW | O_DIRECTORY``: once open, renaming or relinking anything above it
  changes nothing we read, and a link planted on the way fails the open (ELOOP);
* files are opened relative to their folder's descriptor, ``O_NOFOLLOW`` as well;
* walks are iterative (no recursion to overflow) with a depth cap and a cap on the
  entries read, both reported to the caller so the manifest can say what was left.

Where ``dir_fd`` is missing (Windows), the same checks run on paths: a component that
is a link or a junction is refused.  Only :mod:`collector.gather` uses this module.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Callable, Iterator, Optional, Sequence

MAX_DEPTH = 32               # folders below a source folder that are entered
MAX_ENTRIES = 20000          # names read from one source's tree (files and folders)

DIR_FLAGS = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
HAVE_DIR_FD = (os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd
               and os.scandir in os.supports_fd)


class Refused(OSError):
    """A folder on the way is a link, belongs to someone it must not, or changed while read."""


class Folder:
    """One open folder of the examined system: a descriptor where the OS allows, else a path.

    ``path`` is kept for messages and for resolving links found inside; reads go through
    the descriptor, so they see the folder that was opened even if its path is changed.
    """

    def __init__(self, path: str, fd: Optional[int]):
        self.path, self.fd = path, fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "Folder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def at(self, name: str) -> tuple[str, Optional[int]]:
        """``(name, dir_fd)`` to pass to ``os.open``/``os.stat`` for an entry of this folder."""
        if self.fd is not None:
            return name, self.fd
        return os.path.join(self.path, name), None

    def lstat(self, name: str) -> os.stat_result:
        target, dir_fd = self.at(name)
        return os.stat(target, dir_fd=dir_fd, follow_symlinks=False)

    def names(self, limit: int, match: Optional[Callable[[str], bool]] = None) -> tuple[list[str], bool]:
        """Up to ``limit`` entry names (those ``match`` accepts), sorted, and whether more
        were left out: only that many are ever held in memory, and a cut is never silent."""
        kept: list[str] = []
        with os.scandir(self.fd if self.fd is not None else self.path) as it:
            for entry in it:
                if match is None or match(entry.name):
                    if len(kept) == limit:
                        return sorted(kept), True
                    kept.append(entry.name)
        return sorted(kept), False

    def child(self, name: str, owners: Optional[frozenset[int]] = None) -> "Folder":
        """The sub-folder ``name``, never through a link; Refused when it is one, or when
        ``owners`` is given and the folder belongs to nobody in it."""
        if name in ("", ".", "..") or "/" in name or "\0" in name or os.sep in name:
            raise Refused(f"{self.path}: {name!r} is not a folder name: not followed")
        target, dir_fd = self.at(name)
        if dir_fd is None:
            st = os.lstat(target)
            if stat.S_ISLNK(st.st_mode) or _is_junction(st) or not stat.S_ISDIR(st.st_mode):
                raise Refused(f"{target}: a link or not a folder: not followed")
            folder = Folder(target, None)
        else:
            try:
                fd = os.open(target, DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (_ELOOP, _ENOTDIR):
                    raise Refused(f"{os.path.join(self.path, name)}: a link or not a folder "
                                  "(or it changed while read): not followed") from None
                raise
            folder = Folder(os.path.join(self.path, name), fd)
            st = os.fstat(fd)
        if owners is not None and st.st_uid not in owners:
            folder.close()
            raise Refused(f"{folder.path}: owned by uid {st.st_uid}, not by the user it belongs to "
                          "(or root): not read")
        return folder


def open_folder(base: str, rel: Sequence[str], owners: Optional[frozenset[int]] = None) -> Folder:
    """``base/rel...`` opened one component at a time, links refused on the way.

    ``base`` must already be a resolved, validated real path (the caller checked it is
    inside the root or the user's folder); ``owners``, when given, are the only uids
    allowed to own ``base`` and every folder below it.
    """
    if HAVE_DIR_FD:
        try:
            fd = os.open(base, DIR_FLAGS)
        except OSError as exc:
            if exc.errno in (_ELOOP, _ENOTDIR):
                raise Refused(f"{base}: a link or not a folder (or it changed while read): "
                              "not followed") from None
            raise
        folder = Folder(base, fd)
        st = os.fstat(fd)
    else:
        st = os.lstat(base)
        if stat.S_ISLNK(st.st_mode) or _is_junction(st):
            raise Refused(f"{base}: a link: not followed")
        folder = Folder(base, None)
    if owners is not None and st.st_uid not in owners:
        folder.close()
        raise Refused(f"{base}: owned by uid {st.st_uid}, not by the user it belongs to (or root): "
                      "not read")
    try:
        for name in rel:
            child = folder.child(name, owners)
            folder.close()
            folder = child
    except BaseException:
        folder.close()
        raise
    return folder


class Walk:
    """Every non-folder entry below ``top``, depth first in name order, without recursion.

    Yields ``(rel_parts, folder, name, lstat)``; ``folder`` stays open only while its
    entries are yielded.  Folders deeper than ``max_depth`` are not entered
    (``too_deep`` counts them, ``first_too_deep`` is the first one's relative parts); after ``max_entries``
    names the walk stops (``cut`` is then True); folders that are refused (links, wrong
    owner) or unreadable are listed in ``refused``.
    """

    def __init__(self, top: Folder, max_depth: int = MAX_DEPTH, max_entries: int = MAX_ENTRIES,
                 owners: Optional[frozenset[int]] = None):
        self.top, self.max_depth, self.max_entries, self.owners = top, max_depth, max_entries, owners
        self.too_deep = 0
        self.first_too_deep: tuple[str, ...] = ()
        self.cut = False
        self.refused: list[str] = []

    def __iter__(self) -> Iterator[tuple[tuple[str, ...], Folder, str, os.stat_result]]:
        budget = self.max_entries
        try:
            names, _ = self.top.names(budget + 1)
        except OSError as exc:
            self.refused.append(f"{self.top.path}: {exc.strerror or exc}")
            return
        stack: list[tuple[Folder, tuple[str, ...], Iterator[str]]] = [(self.top, (), iter(names))]
        try:
            while stack:
                folder, rel, pending = stack[-1]
                name = next(pending, None)
                if name is None:
                    stack.pop()
                    if folder is not self.top:
                        folder.close()
                    continue
                budget -= 1
                if budget < 0:
                    self.cut = True
                    return
                try:
                    st = folder.lstat(name)
                except OSError:
                    continue                       # vanished while listed
                if not stat.S_ISDIR(st.st_mode):
                    yield rel + (name,), folder, name, st
                    continue
                if len(rel) + 1 > self.max_depth:
                    self.too_deep += 1
                    self.first_too_deep = self.first_too_deep or rel + (name,)
                    continue
                try:
                    sub = folder.child(name, self.owners)
                except Refused as exc:
                    self.refused.append(str(exc))
                    continue
                except OSError as exc:
                    self.refused.append(f"{os.path.join(folder.path, name)}: {exc.strerror or exc}")
                    continue
                try:
                    sub_names, _ = sub.names(budget + 1)
                except OSError as exc:
                    sub.close()
                    self.refused.append(f"{sub.path}: {exc.strerror or exc}")
                    continue
                stack.append((sub, rel + (name,), iter(sub_names)))
        finally:
            for folder, _, _ in stack:
                if folder is not self.top:
                    folder.close()


def _is_junction(st: os.stat_result) -> bool:
    """A Windows reparse point (junction, mount point): a link by another name."""
    attributes = getattr(st, "st_file_attributes", 0)
    return bool(attributes & getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0x400))


_ELOOP, _ENOTDIR = errno.ELOOP, errno.ENOTDIR
