"""The private temporary directory a run keeps its plaintext in, and its cleanup.

Nothing collected may outlive the run unencrypted (DESIGN.md, safety rules): the
directory is created mode 0700, removed on every exit path (normal return,
exception, SIGINT, SIGTERM), and the next run sweeps what a crashed run (SIGKILL,
power loss) left behind — recognised by its name and a dead owner PID.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

PREFIX = "jcdiag-run-"


def _pid_alive(pid: int) -> bool:
    try:
        import psutil
        return psutil.pid_exists(pid)
    except Exception:  # pragma: no cover - psutil missing or denied
        return True


def sweep(base: Optional[Path] = None) -> list[Path]:
    """Remove run directories of processes that no longer exist; the ones removed."""
    base = Path(base or tempfile.gettempdir())
    removed = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            pid = int(entry.name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


class _Terminated(BaseException):
    """Raised in the main thread on SIGTERM so ``finally`` blocks run."""


@contextmanager
def private_workspace(base: Optional[Path] = None) -> Iterator[Path]:
    """A fresh 0700 directory, removed however the block ends.

    SIGTERM is turned into an exception for the duration (SIGINT already is), so
    cleanup runs; the original handlers are restored afterwards.
    """
    base = Path(base or tempfile.gettempdir())
    sweep(base)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
    os.chmod(path, 0o700)
    previous = None
    main = threading.current_thread() is threading.main_thread()
    if main and hasattr(signal, "SIGTERM"):
        def on_term(signum, frame):
            raise _Terminated()
        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield path
    except _Terminated:
        raise SystemExit(128 + signal.SIGTERM)
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
