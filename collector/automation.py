"""Being a good citizen under cron, systemd, Jamf, Intune and JumpCloud Commands.

* :func:`single_run_lock`: one run at a time.  MDM tools retry and overlap schedules;
  two collections at once would double the load on a machine that is already in
  trouble and race on the spool.  The second run fails at once and names the first.
* :func:`lower_priority`: scheduled runs yield the CPU and the disk to the work the
  machine is for (nice 10, I/O best-effort 7 on Linux; below-normal on Windows).
  Child processes (the commands gather runs) inherit it.
* :func:`runtime_limit`: a run that overstays its ``--max-runtime`` is stopped the way
  SIGTERM stops it, so the private workspace is removed and nothing is left half-written,
  and ends with a clear message instead of being killed by the MDM agent without one.

All three are OS-independent at their surface; the OS-specific parts are small and
chosen at call time.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from .filelock import try_lock, unlock
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

LOCK_NAME = "jcdiag.lock"
# Windows locks are mandatory byte ranges: lock a byte past the PID text so a
# second run can still read who holds the lock.
_WIN_LOCK_OFFSET = 4096


class AlreadyRunning(Exception):
    """Another jcdiag run holds the lock; ``pid`` is the holder (None if it did not say)."""

    def __init__(self, path: Path, pid: Optional[int]):
        self.path = path
        self.pid = pid
        who = f"PID {pid}" if pid else "PID unknown"
        super().__init__(f"another jcdiag run is in progress ({who}, lock file {path}); "
                         "wait for it to finish, or stop that process")


class RuntimeLimitExceeded(BaseException):
    """The run reached its ``--max-runtime``; the workspace was cleaned up on the way out.

    A BaseException, like KeyboardInterrupt, because it arrives asynchronously: an
    ``except Exception`` around one collector must not swallow it and carry on.
    """

    exit_code = 1

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"stopped after the maximum run time of {_human_seconds(seconds)} "
                         "(--max-runtime); nothing was written. Allow more time with --max-runtime "
                         "or collect less with --since")


def _human_seconds(seconds: float) -> str:
    for unit, factor in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    return f"{seconds:g}s"


# --------------------------------------------------------------------------- one run at a time


LOCK_ENV = "JCDIAG_LOCK_FILE"


def default_lock_path() -> Path:
    """In jcdiag's state folder: system-wide for root/Administrator (so every scheduled run
    shares it), per user otherwise — ``/var/lib/jcdiag/jcdiag.lock`` for root on Linux.

    It does not follow ``JCDIAG_SPOOL``: moving the spool must not let two live
    collections run at once.  ``$JCDIAG_LOCK_FILE`` moves it on purpose (tests do).
    """
    from .spool import default_state_dir

    if os.environ.get(LOCK_ENV):
        return Path(os.environ[LOCK_ENV])
    return default_state_dir() / LOCK_NAME


def _holder_pid(fd: int) -> Optional[int]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        return int(text.split()[0]) if text else None
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def single_run_lock(path: Path | str | None = None) -> Iterator[Path]:
    """Hold the exclusive run lock for the block, or raise :class:`AlreadyRunning` at once.

    The lock is the OS's (flock / msvcrt byte lock), so it vanishes with its process: a
    crashed or killed run never blocks the next one.  The file holds the holder's PID for
    the message; it is left in place (unlinking a lock file races with a run opening it).
    """
    lock_path = Path(path) if path is not None else default_lock_path()
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(lock_path, flags, 0o644)
    try:
        if not try_lock(fd, _WIN_LOCK_OFFSET):
            raise AlreadyRunning(lock_path, _holder_pid(fd))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        try:
            yield lock_path
        finally:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            unlock(fd, _WIN_LOCK_OFFSET)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- priority


def lower_priority(process: Any = None, family: Optional[str] = None) -> dict[str, Any]:
    """Lower this process's CPU and I/O priority, best effort; never raises.

    Returns what was done and what was refused (``{"nice": 10, "ionice": "best-effort 7",
    "errors": [...]}``) for the run's log.  A priority already lower than the target is
    left alone: a run never raises its own priority.  ``process`` and ``family`` are
    for tests (default: this process, this OS).
    """
    done: dict[str, Any] = {"errors": []}
    try:
        import psutil
        proc = process or psutil.Process()
    except Exception as exc:  # psutil missing or this process not visible
        done["errors"].append(f"psutil: {exc}")
        return done
    if family is None:
        from platforms import current_family
        family = current_family()
    if family == "windows":
        _attempt(done, "priority", lambda: _windows_priority(proc))
        _attempt(done, "ionice", lambda: _set_ionice(proc, getattr(psutil, "IOPRIO_LOW", 1), None, "low"))
        return done
    _attempt(done, "nice", lambda: _posix_nice(proc, 10))
    if family == "linux" and hasattr(proc, "ionice"):
        _attempt(done, "ionice", lambda: _set_ionice(proc, getattr(psutil, "IOPRIO_CLASS_BE", 2), 7,
                                                     "best-effort 7"))
    return done


def _attempt(done: dict[str, Any], what: str, action: Callable[[], Any]) -> None:
    try:
        done[what] = action()
    except Exception as exc:  # AccessDenied, unsupported: a low priority is a courtesy
        done["errors"].append(f"{what}: {type(exc).__name__}: {exc}")


def _posix_nice(proc: Any, target: int) -> int:
    if proc.nice() < target:
        proc.nice(target)
    return proc.nice()


def _set_ionice(proc: Any, ioclass: int, value: Optional[int], label: str) -> str:
    if value is None:
        proc.ionice(ioclass)
    else:
        current = proc.ionice()
        idle = getattr(current, "ioclass", None) == 3         # IOPRIO_CLASS_IDLE is lower still
        if not idle:
            proc.ionice(ioclass, value)
    return label


_WINDOWS_LOWER = ("IDLE_PRIORITY_CLASS", "BELOW_NORMAL_PRIORITY_CLASS")


def _windows_priority(proc: Any) -> str:
    import psutil

    below = getattr(psutil, "BELOW_NORMAL_PRIORITY_CLASS", 0x4000)
    lower = {getattr(psutil, n, None) for n in _WINDOWS_LOWER}
    if proc.nice() not in lower:
        proc.nice(below)
    return "below-normal"


# --------------------------------------------------------------------------- run time


@contextmanager
def runtime_limit(seconds: Optional[float], grace: float = 60.0,
                  on_expiry: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """End the block with :class:`RuntimeLimitExceeded` once ``seconds`` have passed.

    A watchdog thread sends SIGTERM to the main thread (POSIX) or interrupts it
    (Windows), so whatever cleans up on SIGTERM — ``private_workspace`` removes its
    plaintext — runs as it would for a real stop, and a blocking wait (a command,
    a sleep) is interrupted too.  Whatever exception then comes out of the block is
    replaced by :class:`RuntimeLimitExceeded`.  If the main thread has not left the
    block ``grace`` seconds later (stuck in a call that ignores signals), the process
    exits with status 1; the next run sweeps its workspace.  ``on_expiry`` runs in the
    watchdog thread first (to log that the run is being stopped).  ``None`` or ``0``:
    no limit.

    Use it from the main thread, around the whole run.
    """
    if not seconds or seconds <= 0:
        yield
        return
    main_ident = threading.main_thread().ident
    state = threading.Lock()          # orders "time is up" against "the block is over"
    expired = threading.Event()
    left = threading.Event()

    def fire() -> None:
        with state:
            if left.is_set():
                return
            expired.set()
        if on_expiry is not None:
            on_expiry()
        _interrupt_main(main_ident)
        if not left.wait(grace):
            sys.stderr.write(f"jcdiag: {RuntimeLimitExceeded(seconds)}; the run did not stop "
                             f"within {grace:g}s and was ended\n")
            sys.stderr.flush()
            os._exit(RuntimeLimitExceeded.exit_code)

    previous = _install_term_handler(expired, seconds)
    watchdog = threading.Thread(target=_after, args=(seconds, left, fire), name="jcdiag-max-runtime",
                                daemon=True)
    watchdog.start()
    try:
        yield
    except RuntimeLimitExceeded:
        raise
    except BaseException as exc:
        if expired.is_set():
            raise RuntimeLimitExceeded(seconds) from exc
        raise
    finally:
        with state:
            left.set()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if expired.is_set():                       # time ran out as the block was ending
        raise RuntimeLimitExceeded(seconds)


def _after(seconds: float, cancelled: threading.Event, action: Callable[[], None]) -> None:
    if not cancelled.wait(seconds):
        action()


def _install_term_handler(expired: threading.Event, seconds: float):
    """While the limit is armed, SIGTERM unwinds the main thread (so ``finally`` blocks
    run) instead of killing the process outright; ``private_workspace`` installs its own
    handler while it is open, to the same effect."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return None

    def on_term(signum, frame):
        if expired.is_set():
            raise RuntimeLimitExceeded(seconds)
        raise SystemExit(128 + signal.SIGTERM)

    return signal.signal(signal.SIGTERM, on_term)


def _interrupt_main(main_ident: Optional[int]) -> None:
    """Deliver SIGTERM to the main thread itself, so its blocking call returns EINTR and
    the Python handler runs; on Windows simulate it (the handler runs at the next bytecode)."""
    if hasattr(signal, "pthread_kill") and main_ident is not None:
        signal.pthread_kill(main_ident, signal.SIGTERM)
        return
    import _thread  # pragma: no cover - Windows only
    _thread.interrupt_main(signal.SIGTERM)
