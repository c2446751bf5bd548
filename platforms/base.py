"""The one interface every OS module answers, and the data types they answer with.

Modelled on psutil's ``_common``: every platform module (``linux``, ``macos``,
``windows``) answers the same questions with the same named types, so the rest of
jcdiag never branches on the OS.  A platform reads facts from an injected *root*
(a sysroot prefix: ``/`` on the live system, a mounted disk or a fixture tree
otherwise) and an injected *command runner*; on Windows also a registry reader.
That injection is what lets every OS be tested on Linux from recorded outputs.

A platform only *declares* what to collect (``sources()``, sos-style); reading
those files and running those commands is ``collector.gather``'s job, where the
safety rules live once.
"""
from __future__ import annotations

import errno
import os
import secrets
import signal
import stat
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO, Callable, Iterable, Mapping, Optional, Protocol, Sequence

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class CommandResult:
    """What one command gave: its exit status and raw output bytes.

    ``error`` is set when the command could not run at all (not installed, not
    allowed on a non-live root) or was killed at its deadline (``timed_out``).
    """

    argv: tuple[str, ...]
    returncode: Optional[int]
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    error: Optional[str] = None
    seconds: float = 0.0
    stdout_cut: int = 0               # bytes of output dropped past the runner's bound
    stderr_cut: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out and self.returncode == 0

    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


class CommandRunner(Protocol):
    """Runs ``argv`` with a deadline in seconds and returns what it gave."""

    live: bool

    def __call__(self, argv: Sequence[str], timeout: float = 30.0) -> CommandResult: ...


class LiveRunner:
    """Runs commands on this machine, killing the whole process group at the deadline.

    Output is read while the command runs and only the first ``max_output`` bytes of
    each stream are kept (the rest is read and dropped, so the command never blocks on
    a full pipe), so a runaway command cannot exhaust memory; ``stdout_cut`` and
    ``stderr_cut`` say how many bytes were dropped.
    """

    live = True

    def __init__(self, max_output: int = 16 * 1024 * 1024):
        self.max_output = max_output

    def __call__(self, argv: Sequence[str], timeout: float = 30.0) -> CommandResult:
        argv = tuple(argv)
        start = time.monotonic()
        kwargs: dict[str, Any] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        else:  # pragma: no cover - Windows only
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, **kwargs,
            )
        except FileNotFoundError:
            return CommandResult(argv, None, error=f"{argv[0]}: command not found")
        except OSError as exc:
            return CommandResult(argv, None, error=f"{argv[0]}: {exc.strerror or exc}")
        out, err = _BoundedReader(proc.stdout, self.max_output), _BoundedReader(proc.stderr, self.max_output)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            proc.wait()
        # A grandchild that left the group may hold the pipes open: wait a little, then stop.
        grace_until = time.monotonic() + 2.0
        for reader in (out, err):
            reader.finish(grace=max(0.0, grace_until - time.monotonic()))
        fields = dict(stdout=out.data, stderr=err.data, stdout_cut=out.dropped,
                      stderr_cut=err.dropped, seconds=time.monotonic() - start)
        if timed_out:
            return CommandResult(argv, None, timed_out=True, error=f"killed after {timeout:g} s deadline",
                                 **fields)
        return CommandResult(argv, proc.returncode, **fields)


class _BoundedReader:
    """Drains one pipe in a thread, keeping at most ``limit`` bytes and counting the rest.

    A reader still blocked after :meth:`finish` (a grandchild that escaped the process
    group holds the pipe) is left to drain to EOF as a daemon thread: closing a pipe
    under a blocked reader is not safe, and what it reads is dropped anyway.
    """

    def __init__(self, pipe, limit: int):
        self.pipe, self.limit = pipe, limit
        self._data = bytearray()
        self._dropped = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        fd = self.pipe.fileno()
        try:
            while chunk := os.read(fd, 65536):
                with self._lock:
                    room = max(0, self.limit - len(self._data))
                    self._data += chunk[:room]
                    self._dropped += len(chunk) - min(room, len(chunk))
        except OSError:
            pass
        self.pipe.close()

    def finish(self, grace: float) -> None:
        self._thread.join(grace)
        with self._lock:
            self.data, self.dropped = bytes(self._data), self._dropped


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        proc.kill()


class OfflineRunner:
    """Stands in for commands when the root is not the live system.

    With ``--root`` pointing at a mounted disk or fixture tree, nothing may run
    against the live machine: every command answers "not run" and the facts it
    would have told are reported as unknown.
    """

    live = False

    def __call__(self, argv: Sequence[str], timeout: float = 30.0) -> CommandResult:
        return CommandResult(tuple(argv), None, error="not run: the root is not the live system")


# --------------------------------------------------------------------------- registry


class RegistryReader(Protocol):
    """Read-only access to the Windows registry (``winreg`` live, fixtures in tests).

    Keys are full paths like ``HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion``.
    Missing keys or values give ``None`` / empty lists, never an exception.
    """

    def value(self, key: str, name: str) -> Any: ...

    def values(self, key: str) -> dict[str, Any]: ...

    def subkeys(self, key: str) -> list[str]: ...

    def exists(self, key: str) -> bool: ...


# --------------------------------------------------------------------------- facts


@dataclass
class OSInfo:
    """Who the OS is.  Empty strings mean "not known", never a guess.

    ``id``/``id_like``/``version_id`` follow os-release semantics on every OS so the
    lifecycle table can be keyed the same way: ``macos``/``14.4.1``,
    ``windows``/``10.0.22631`` (``windows-server`` for servers).
    """

    family: str                 # linux | macos | windows
    name: str = ""              # "Ubuntu 22.04.4 LTS", "macOS Sonoma", "Windows 11 Pro"
    id: str = ""                # os-release ID: ubuntu, rhel, macos, windows, windows-server
    id_like: tuple[str, ...] = ()
    version: str = ""           # human version: "22.04.4 LTS", "14.4.1", "23H2"
    version_id: str = ""        # machine version: "22.04", "14.4.1", "10.0.22631"
    build: str = ""             # macOS BuildVersion, Windows CurrentBuild
    edition: str = ""           # Windows EditionID (Professional, Enterprise, ServerStandard...)
    installation_type: str = "" # Windows Client | Server | Server Core
    codename: str = ""          # VERSION_CODENAME / macOS marketing name
    kernel: str = ""            # uname -r, Darwin version, NT build.UBR
    arch: str = ""              # x86_64, arm64, AMD64
    hostname: str = ""
    source: str = ""            # where the facts came from, for the engineer

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id_like"] = list(self.id_like)
        return d


@dataclass
class Hotfix:
    """One installed Windows update (Get-HotFix / Win32_QuickFixEngineering)."""

    id: str
    installed_on: Optional[date] = None
    description: str = ""


@dataclass
class PatchLevel:
    """How current the OS is.  ``None`` means unknown, and ``notes`` says why.

    One type for every OS; the fields an OS cannot tell stay ``None``/empty.
    """

    pending_reboot: Optional[bool] = None
    last_update: Optional[datetime] = None          # newest successful update of any kind
    pending_security_updates: Optional[int] = None  # Linux: count, None when metadata stale
    pending_updates: list[str] = field(default_factory=list)  # names of what is waiting
    # Windows
    ubr: Optional[int] = None
    hotfixes: list[Hotfix] = field(default_factory=list)
    # macOS
    product_version_extra: str = ""                 # Rapid Security Response, e.g. "(a)"
    # Linux
    running_kernel: str = ""
    newest_kernel: str = ""
    metadata_fresh: Optional[bool] = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass
class ProcessInfo:
    pid: int
    name: str
    cpu_percent: Optional[float] = None
    rss: Optional[int] = None                        # bytes
    create_time: Optional[datetime] = None
    username: str = ""


@dataclass
class AgentInfo:
    """The JumpCloud agent as this machine sees it."""

    installed: Optional[bool] = None
    version: str = ""
    service_name: str = ""
    service_state: str = "unknown"                   # running | stopped | unknown | absent
    service_enabled: Optional[bool] = None
    processes: list[ProcessInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    live: bool = True          # False: read from a root that is not the running system

    def __post_init__(self) -> None:
        if not self.live:
            self.notes.append("process and service state unknown: the root is not the live system")

    @property
    def running(self) -> Optional[bool]:
        """True, False, or None when nobody can know (an offline root, no service answer)."""
        if self.processes:
            return True
        if not self.live:
            return False if self.installed is False else None
        return None if self.service_state == "unknown" else False

    @property
    def pid(self) -> Optional[int]:
        return self.processes[0].pid if self.processes else None

    def to_dict(self) -> dict[str, Any]:
        d = _jsonable(asdict(self))
        d["running"] = self.running
        d["pid"] = self.pid
        if not self.live and not self.processes:    # an offline root's list is unknown, not empty
            d["processes"] = None
        return d


def _jsonable(value: Any) -> Any:
    """Dates and datetimes as ISO strings, recursively, for JSON output."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------- processes

ProcessLister = Callable[[], Iterable[ProcessInfo]]


def live_processes() -> list[ProcessInfo]:
    """Every process on this machine, via psutil (names, cpu, memory)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "name", "memory_info", "create_time", "username"]):
        info = proc.info
        mem = info.get("memory_info")
        created = info.get("create_time")
        found.append(ProcessInfo(
            pid=info["pid"], name=info.get("name") or "",
            rss=getattr(mem, "rss", None),
            create_time=datetime.fromtimestamp(created) if created else None,
            username=info.get("username") or "",
        ))
    return found


def processes_named(lister: ProcessLister, names: Iterable[str]) -> list[ProcessInfo]:
    """The processes whose name matches one of ``names`` (case-insensitive, .exe ignored),
    with CPU percent sampled for live ones."""
    wanted = {n.lower().removesuffix(".exe") for n in names}
    return [p for p in lister() if p.name.lower().removesuffix(".exe") in wanted]


# --------------------------------------------------------------------------- platform


class Platform(ABC):
    """Base of ``platforms.linux.Linux``, ``platforms.macos.MacOS``, ``platforms.windows.Windows``.

    ``root`` is the directory the system's files are read under; ``runner`` runs
    commands (an :class:`OfflineRunner` whenever ``root`` is not the live system);
    ``processes`` lists running processes (empty when not live).
    """

    family: str = ""

    def __init__(self, root: Path | str = "/", runner: Optional[CommandRunner] = None,
                 processes: Optional[ProcessLister] = None, live: Optional[bool] = None):
        self.root = Path(root)
        if live is None:
            live = self.root.resolve() == Path(self.root.anchor or "/").resolve()
        self.live = live
        self.runner: CommandRunner = runner or (LiveRunner() if live else OfflineRunner())
        self.processes: ProcessLister = processes or (live_processes if live else (lambda: []))

    # Paths ---------------------------------------------------------------------------
    def path(self, system_path: str) -> Path:
        """Map an absolute path of the examined system onto ``root``.

        ``/var/log/x`` -> ``<root>/var/log/x``; ``C:\\Windows\\Temp\\x`` ->
        ``<root>/Windows/Temp/x``.  On a root that is not the live system, links are
        resolved inside the root as that system would (an image's ``/etc/os-release ->
        /usr/lib/os-release`` means its own file, never this machine's); a path that cannot
        be resolved (a loop, a name too long) maps to a name that exists nowhere.
        """
        windows = self.family == "windows"
        parts = system_parts(system_path, windows=windows)
        if self.live:
            return self.root.joinpath(*parts)
        try:
            return self.root.joinpath(*resolve_inside(str(self.root), parts, fold_case=windows))
        except OSError:
            return self.root / _UNRESOLVABLE

    def read_text(self, system_path: str, limit: int = 1024 * 1024) -> Optional[str]:
        """A small fact file's text (bounded), or None when absent or unreadable."""
        try:
            with open_fact(self.path(system_path)) as fh:
                return fh.read(limit).decode("utf-8", errors="replace")
        except OSError:
            return None

    def user_homes(self) -> list[str]:
        """System paths of local user profile folders (per-user agent files live there)."""
        return []

    # Facts ---------------------------------------------------------------------------
    @abstractmethod
    def os_info(self) -> OSInfo: ...

    @abstractmethod
    def patch_level(self) -> PatchLevel: ...

    @abstractmethod
    def agent_info(self) -> AgentInfo: ...

    # What to collect -----------------------------------------------------------------
    @abstractmethod
    def sources(self) -> list:
        """``collector.sources`` FileSource/CommandSource declarations for this OS."""

    def never_collect(self) -> list[str]:
        """Extra system paths never to collect on this OS, beyond the central list in
        ``collector.gather`` (e.g. the key paths ``jcagent.conf`` names)."""
        return []


MAX_LINKS = 40               # links followed while resolving one path (Linux's own limit)
# Where an unresolvable path of an image points: a name nobody can plant (random per run).
_UNRESOLVABLE = f".jcdiag-unresolvable-{secrets.token_hex(8)}"


def resolve_inside(root: str, parts: Sequence[str], fold_case: bool = False,
                   max_links: int = MAX_LINKS) -> tuple[str, ...]:
    """``parts`` (components of an absolute path of the examined system) with every link
    resolved as that system would: an absolute target restarts at ``root``, ``..`` stops
    there, so the result never leaves ``root`` -- whatever links an image holds, and
    without touching this machine's own folders.  Iterative, at most ``max_links``
    links (OSError ELOOP beyond: a chain or a loop).  Components that do not exist are kept
    as given (the path names nothing yet); with ``fold_case`` (a Windows image on a
    case-sensitive disk) a missing component is looked up ignoring case, as Windows would
    find it.  Any other failure (a name too long, a NUL, no permission) raises, and so
    does a ``..`` after a missing component: the kernel would resolve it relative to
    whatever appears there later, so nothing is promised about where it leads.
    """
    pending = list(parts)
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        if "\0" in part:
            raise OSError(errno.EINVAL, "a NUL byte in a path", part)
        here = os.path.join(root, *resolved)
        try:
            st = os.lstat(os.path.join(here, part))
        except (FileNotFoundError, NotADirectoryError):
            found = _case_match(here, part) if fold_case else None
            if found is None:
                rest = [p for p in pending if p not in ("", ".")]
                if ".." in rest:
                    raise OSError(errno.ENOENT, "a path that climbs out of a missing folder",
                                  os.path.join(here, part)) from None
                return tuple(resolved) + (part,) + tuple(rest)
            part = found
            st = os.lstat(os.path.join(here, part))
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > max_links:
                raise OSError(errno.ELOOP, f"more than {max_links} links in a row (a chain or a loop): "
                              "not followed", os.path.join(here, part))
            target = os.readlink(os.path.join(here, part))
            if target.startswith("/"):
                resolved = []
            pending = target.split("/") + pending
            continue
        resolved.append(part)
    return tuple(resolved)


def _case_match(folder: str, name: str) -> Optional[str]:
    """The one entry of ``folder`` equal to ``name`` ignoring case (the first, sorted)."""
    want = name.casefold()
    try:
        return min((n for n in os.listdir(folder) if n.casefold() == want), default=None)
    except (OSError, ValueError):
        return None



def open_fact(path: Path | str) -> BinaryIO:
    """A fact file of the examined system opened for reading, if it is a regular file.

    ``open()`` on a FIFO blocks for ever and on a device runs its driver; an image may
    hold either where ``etc/passwd`` or ``os-release`` should be.  Opened non-blocking,
    checked, then made blocking again; OSError otherwise.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):          # never open a device: its driver would run
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def system_parts(system_path: str, windows: Optional[bool] = None) -> tuple[str, ...]:
    """The components of an absolute system path, drive and root stripped.

    ``windows`` says whose path it is; pass it whenever any part of the path came from
    the examined system: on Linux and macOS a backslash is an ordinary character of a
    name (``/Users/eve\\..\\..\\srv``), never a separator.  Guessed from the path only
    for the platforms' own constants."""
    if windows is None:
        windows = len(system_path) >= 2 and system_path[1] == ":" or "\\" in system_path
    if windows:
        parts = PureWindowsPath(system_path).parts
    else:
        parts = PurePosixPath(system_path).parts
    return tuple(p for p in parts if p not in ("/", "\\") and not p.endswith((":\\", ":")))


def parse_key_values(text: str, sep: str = "=") -> dict[str, str]:
    """``KEY=value`` lines (os-release, systemctl show) into a dict; quotes removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or sep not in line:
            continue
        key, _, value = line.partition(sep)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def mapping_get(data: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of ``keys`` present in ``data``."""
    for k in keys:
        if k in data and data[k] not in (None, ""):
            return data[k]
    return default
