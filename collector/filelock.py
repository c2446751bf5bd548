"""Exclusive, non-blocking file locks that the OS drops when the process dies.

One primitive for the run lock (``collector.automation``) and the per-bundle spool
locks (``collector.spool``): ``flock`` on POSIX, ``msvcrt.locking`` of one byte on
Windows (at ``offset``, so a lock file can still hold readable text before it).
"""
from __future__ import annotations

import os


def try_lock(fd: int, offset: int = 0) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False when someone else has it."""
    try:
        if os.name == "nt":  # pragma: no cover - Windows only
            import msvcrt
            os.lseek(fd, offset, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def unlock(fd: int, offset: int = 0) -> None:
    if os.name == "nt":  # pragma: no cover - Windows only
        import msvcrt
        os.lseek(fd, offset, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_UN)
