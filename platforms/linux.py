"""Linux: version, patch level and the JumpCloud agent, from a root and a command runner.

Facts come from files wherever files can tell them, so the same code answers for
the live system and for a mounted disk image (``--root``): ``etc/os-release``,
the kernels under ``boot`` and ``lib/modules``, dpkg's status database and apt's
package lists, package-manager logs, systemd unit files.  What only the running
system can tell (running kernel, whether systemd runs the agent, what dnf knows
about advisories) comes from ``uname`` and the command runner when live and is
reported as unknown otherwise, with a note saying why.

Paths are resolved inside the root the way the examined system would resolve them:
an absolute symlink on a disk image (``etc/os-release -> /usr/lib/os-release``)
points into the image, never at the host.
"""
from __future__ import annotations

import json
import os
import platform as _host
import posixpath
import re
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from .posix_agent import (AGENT_CONF, AGENT_CONF_IDENTITY_KEYS, AGENT_DIR, AGENT_VERSION_FILE,
                          agent_config_sources, agent_log_sources, config_source)
from collector.sources import CommandSource, FileSource

from . import _pkgdb as pkgdb
from .base import (
    open_fact,
    AgentInfo, CommandRunner, OSInfo, PatchLevel, Platform, ProcessLister, parse_key_values,
    processes_named,
)
from .pkgversion import rpm_compare, rpm_key

OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")
HOSTNAME_FILES = ("/etc/hostname", "/etc/HOSTNAME")   # the second on older SUSE
AGENT_BINARY = f"{AGENT_DIR}/bin/jumpcloud-agent"
AGENT_UNIT = "jcagent.service"
AGENT_PROCESS = "jumpcloud-agent"
AGENT_IDENTITY_FILES = ("client.key", "client.crt", "ca.crt")
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system",
             "/usr/lib/systemd/system")
SYSTEMCTL_PROPERTIES = "LoadState,ActiveState,SubState,UnitFileState,MainPID"
CONF_MAX_BYTES = 1024 * 1024
METADATA_MAX_AGE = timedelta(days=7)

DPKG_STATUS = "/var/lib/dpkg/status"
APT_LISTS = "/var/lib/apt/lists"
# Where each package manager leaves its metadata, as (folder, glob patterns): the
# newest of these files tells when the metadata was last refreshed.  apt stamps its
# lists with the server's Last-Modified time; update-success-stamp is local time.
METADATA_FILES = (
    (APT_LISTS, ("*_InRelease", "*_Release")),
    ("/var/lib/apt/periodic", ("update-success-stamp",)),
    ("/var/cache/dnf", ("*/repodata/repomd.xml", "*.solv", "last_makecache")),
    ("/var/cache/yum", ("*/*/*/repomd.xml", "*/*/*/cachecookie")),
    ("/var/cache/zypp", ("raw/*/repodata/repomd.xml", "solv/*/cookie")),
)
# Package logs and the reader of each; rotations (.1, .2.gz, -20240101) are read
# newest first until one of them holds an update.
UPDATE_LOGS: tuple[tuple[str, Callable[[Iterable[str]], Optional[datetime]]], ...] = (
    ("/var/log/apt/history.log", pkgdb.apt_history_newest),
    ("/var/log/dpkg.log", pkgdb.dpkg_log_newest),
    ("/var/log/dnf.rpm.log", pkgdb.dnf_rpm_log_newest),
    ("/var/log/zypp/history", pkgdb.zypp_history_newest),
)
YUM_LOG = "/var/log/yum.log"
DNF_SECURITY = ("dnf", "-q", "-C", "updateinfo", "list", "--security")
APT_SIMULATE = ("apt-get", "-s", "dist-upgrade")

# dpkg architecture names as uname -m spells them.
DPKG_ARCH_TO_MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l", "armel": "armv5tel",
                        "i386": "i686", "ppc64el": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
RPM_ARCHES = ("x86_64", "aarch64", "ppc64le", "s390x", "i686", "armv7hl", "riscv64")
# systemd UnitFileState values that say whether the unit starts at boot.
UNIT_FILE_ENABLED = {"enabled": True, "enabled-runtime": True, "linked": True, "linked-runtime": True,
                     "disabled": False, "masked": False, "masked-runtime": False}

_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_ROTATION = r"^{name}(?:\.(\d+)|-(\d{{8}}))?(?:\.gz|\.xz|\.bz2)?$"


# --------------------------------------------------------------------------- parsing


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` assignments as os-release(5) defines them: ``#`` comments and
    blank lines ignored, values in double quotes (backslash escapes ``$ " \\ ```),
    single quotes (literal) or unquoted with backslash escapes."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if match:
            value = _shell_word(match.group(2))
            if value is not None:
                values[match.group(1)] = value
    return values


def _shell_word(text: str) -> Optional[str]:
    """One shell word; None when a quote is left open (the line is malformed)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '$"\\`':
                    i += 1
                out.append(text[i])
                i += 1
            if i >= len(text):
                return None
            i += 1
        elif char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return None
            out.append(text[i + 1:end])
            i = end + 1
        elif char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif char.isspace():
            break
        else:
            out.append(char)
            i += 1
    return "".join(out)


def describe_failure(result) -> str:
    """Why a command gave no usable answer, in one line."""
    if result.error:
        return result.error
    stderr = result.stderr.decode("utf-8", errors="replace").strip()
    return f"exit {result.returncode}" + (f": {stderr.splitlines()[0]}" if stderr else "")


def _live_identity() -> tuple[str, str, str]:
    """(running kernel, machine architecture, hostname) of this machine."""
    return os.uname().release, _host.machine(), socket.gethostname()


def _rpm_name(nevra: str) -> str:
    """``openssl-libs-1:3.0.7-27.el9.x86_64`` -> ``openssl-libs``."""
    body = nevra.rsplit(".", 1)[0] if nevra.rsplit(".", 1)[-1] in RPM_ARCHES + ("noarch",) else nevra
    return body.rsplit("-", 2)[0] if body.count("-") >= 2 else body


# --------------------------------------------------------------------------- platform


class Linux(Platform):
    """Linux distributions with systemd or SysV init, apt/dpkg, dnf/yum or zypper."""

    family = "linux"

    def __init__(self, root: Path | str = "/", runner: Optional[CommandRunner] = None,
                 processes: Optional[ProcessLister] = None, live: Optional[bool] = None,
                 now: Optional[datetime] = None):
        super().__init__(root, runner=runner, processes=processes, live=live)
        self._now = now

    @property
    def now(self) -> datetime:
        """The moment metadata ages are measured from: fixed in tests, the clock otherwise."""
        return self._now or datetime.now()

    # ------------------------------------------------------------------ paths
    def inside(self, system_path: str) -> Path:
        """``system_path`` under the root, links resolved as the examined system would
        (see :meth:`Platform.path`)."""
        return self.path(system_path)

    def read_text(self, system_path: str, limit: int = 1024 * 1024) -> Optional[str]:
        try:
            with open_fact(self.inside(system_path)) as fh:
                return fh.read(limit).decode("utf-8", errors="replace")
        except OSError:
            return None

    def _entries(self, system_dir: str) -> list[str]:
        try:
            return sorted(os.listdir(self.inside(system_dir)))
        except OSError:
            return []

    def _first_line(self, system_path: str) -> str:
        for line in (self.read_text(system_path, limit=4096) or "").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                return line.strip()
        return ""

    # ------------------------------------------------------------------ os
    def os_release(self) -> tuple[dict[str, str], str]:
        """The os-release assignments and the file they came from."""
        for system_path in OS_RELEASE_FILES:
            text = self.read_text(system_path, limit=64 * 1024)
            if text is not None:
                return parse_os_release(text), system_path
        return {}, ""

    def os_info(self) -> OSInfo:
        release, source = self.os_release()
        info = OSInfo(
            family=self.family,
            name=release.get("PRETTY_NAME") or " ".join(
                v for v in (release.get("NAME", ""), release.get("VERSION", "")) if v),
            id=release.get("ID", ""),
            id_like=tuple(release.get("ID_LIKE", "").split()),
            version=release.get("VERSION") or release.get("VERSION_ID", ""),
            version_id=release.get("VERSION_ID", ""),
            codename=release.get("VERSION_CODENAME") or release.get("UBUNTU_CODENAME", ""),
            source=source,
        )
        if self.live:
            info.kernel, info.arch, info.hostname = _live_identity()
        else:
            info.arch = self._offline_arch()
            info.hostname = next(filter(None, map(self._first_line, HOSTNAME_FILES)), "")
        return info

    def _offline_arch(self) -> str:
        """What the disk says the machine is: dpkg's native architecture, else the
        architecture suffix of the installed kernels (RPM systems)."""
        dpkg_arch = pkgdb.dpkg_native_arch(self.inside(DPKG_STATUS))
        if dpkg_arch:
            return DPKG_ARCH_TO_MACHINE.get(dpkg_arch, dpkg_arch)
        for kernel in reversed(self.installed_kernels()):
            suffix = kernel.rsplit(".", 1)[-1]
            if suffix in RPM_ARCHES:
                return suffix
        return ""

    # ------------------------------------------------------------------ patch level
    def installed_kernels(self) -> list[str]:
        """Kernel releases installed on disk, oldest first (rpm segment ordering, so
        ``5.15.0-101`` sorts after ``5.15.0-91``).

        ``boot/vmlinuz-*`` (rescue images excluded) and the ``lib/modules`` folders
        that hold a kernel or its module index; a folder left with only DKMS
        leftovers after the kernel was removed does not count.
        """
        found = {name.removeprefix("vmlinuz-") for name in self._entries("/boot")
                 if name.startswith("vmlinuz-") and "rescue" not in name}
        for modules in ("/lib/modules", "/usr/lib/modules"):
            folder = self.inside(modules)
            for name in self._entries(modules):
                if any((folder / name / marker).exists() for marker in ("vmlinuz", "modules.order", "modules.builtin")):
                    found.add(name)
        return sorted(found, key=rpm_key)

    def patch_level(self) -> PatchLevel:
        level = PatchLevel()
        kernels = self.installed_kernels()
        level.newest_kernel = kernels[-1] if kernels else ""
        if self.live:
            level.running_kernel = _live_identity()[0]
        self._judge_reboot(level)
        level.last_update = self._last_update(level.notes)
        level.metadata_fresh = self._metadata_fresh(level.notes)
        self._security_updates(level)
        level.pending_updates = list(dict.fromkeys(level.pending_updates))
        return level

    def _judge_reboot(self, level: PatchLevel) -> None:
        """Pending when ``/run/reboot-required`` says so (Debian/Ubuntu) or the running
        kernel is older than the newest installed one; known-not-pending only when
        both kernels are known."""
        if self.inside("/run/reboot-required").is_file():
            level.pending_reboot = True
            level.notes.append("/run/reboot-required is present")
            pkgs = self.read_text("/run/reboot-required.pkgs", limit=64 * 1024) or ""
            level.pending_updates += [line.strip() for line in pkgs.splitlines() if line.strip()]
        running, newest = level.running_kernel, level.newest_kernel
        if running and newest:
            if rpm_compare(running, newest) < 0:
                level.pending_reboot = True
                level.notes.append(f"running kernel {running} is older than installed {newest}")
            elif level.pending_reboot is None:
                level.pending_reboot = False
        elif level.pending_reboot is None:
            why = ("the running kernel of a system that is not live cannot be known" if not self.live
                   else "no installed kernel found under /boot or /lib/modules")
            level.notes.append(f"pending reboot unknown: {why}")

    def _rotations(self, system_path: str) -> list[Path]:
        """``system_path`` and its rotated copies, newest first."""
        folder, name = posixpath.split(system_path)
        pattern = re.compile(_ROTATION.format(name=re.escape(name)))
        ranked = []
        for entry in self._entries(folder):
            match = pattern.match(entry)
            if match:
                number, day = match.groups()
                rank = (0, 0) if not (number or day) else (1, int(number)) if number else (2, -int(day))
                ranked.append((rank, entry))
        base = self.inside(folder)
        return [base / entry for _, entry in sorted(ranked)]

    def _last_update(self, notes: list[str]) -> Optional[datetime]:
        newest: Optional[datetime] = None
        for system_path, reader in UPDATE_LOGS:
            for path in self._rotations(system_path):
                stamp = reader(pkgdb.iter_lines(path))
                if stamp:
                    newest = max(newest, stamp) if newest else stamp
                    break
        for path in self._rotations(YUM_LOG):
            try:
                written = datetime.fromtimestamp(path.stat().st_mtime)
            except OSError:
                continue
            stamp = pkgdb.yum_log_newest(pkgdb.iter_lines(path), written.year, written.month)
            if stamp:
                newest = max(newest, stamp) if newest else stamp
                break
        if newest is None:
            notes.append("last update unknown: no install or upgrade found in the package logs")
        return newest

    def _metadata_fresh(self, notes: list[str]) -> Optional[bool]:
        newest = 0.0
        for folder, patterns in METADATA_FILES:
            base = self.inside(folder)
            for pattern in patterns:
                for path in base.glob(pattern):
                    try:
                        newest = max(newest, path.stat().st_mtime)
                    except OSError:
                        continue
        if not newest:
            notes.append("package metadata not found (apt lists, dnf/yum/zypper caches)")
            return None
        refreshed = datetime.fromtimestamp(newest, tz=self.now.tzinfo)
        age = self.now - refreshed
        notes.append(f"package metadata last refreshed {refreshed:%Y-%m-%d %H:%M} "
                     f"({max(age.days, 0)} days old)")
        return age <= METADATA_MAX_AGE

    def _security_updates(self, level: PatchLevel) -> None:
        if level.metadata_fresh is not True:
            state = "stale" if level.metadata_fresh is False else "absent"
            level.notes.append(f"pending security updates unknown: package metadata is {state} "
                               "(refresh it with apt update / dnf makecache and collect again)")
            return
        if self.inside(DPKG_STATUS).is_file():
            self._apt_security(level)
        elif self.inside("/etc/dnf").is_dir() and self.live:
            self._dnf_security(level)
        elif self.inside("/etc/dnf").is_dir():
            level.notes.append("pending security updates unknown: only dnf on the live system can tell them")
        else:
            level.notes.append("pending security updates unknown: not determined for this package manager "
                               "(supported: apt from files, dnf on the live system)")

    def _apt_security(self, level: PatchLevel) -> None:
        """Installed versions against the security pockets' package lists, from files;
        live systems whose lists apt compressed with lz4/zstd ask ``apt-get -s``."""
        lists = [p for p in self.inside(APT_LISTS).glob("*security*_Packages*") if p.is_file()]
        readable = [p for p in lists if pkgdb.compression_of(p) in pkgdb.READABLE_SUFFIXES]
        installed = pkgdb.dpkg_installed(self.inside(DPKG_STATUS)) if readable else {}
        if readable and not installed:
            level.notes.append(f"pending security updates unknown: no installed package read from {DPKG_STATUS}")
        elif readable:
            pending = pkgdb.newer_in_lists(installed, readable)
            level.pending_security_updates = len(pending)
            level.pending_updates += [p.name for p in pending]
            level.notes.append(f"security updates from {len(readable)} security package list(s)")
        elif lists and self.live:
            result = self.runner(APT_SIMULATE, timeout=120)
            if result.ok:
                names = pkgdb.apt_simulation_security(result.text())
                level.pending_security_updates = len(names)
                level.pending_updates += names
                level.notes.append("security updates from apt-get -s dist-upgrade")
            else:
                level.notes.append(f"pending security updates unknown: apt-get -s failed ({describe_failure(result)})")
        elif lists:
            level.notes.append("pending security updates unknown: the package lists are compressed "
                               "(lz4/zstd) and only apt on the live system can read them")
        else:
            level.notes.append("pending security updates unknown: no security package lists in "
                               f"{APT_LISTS} (is a -security repository configured?)")

    def _dnf_security(self, level: PatchLevel) -> None:
        result = self.runner(DNF_SECURITY, timeout=120)
        packages = pkgdb.dnf_security_packages(result.text()) if result.ok else None
        if packages is None:
            why = describe_failure(result) if not result.ok else "output not understood"
            level.notes.append(f"pending security updates unknown: dnf updateinfo gave no answer ({why})")
            return
        names = list(dict.fromkeys(_rpm_name(nevra) for nevra in packages))
        level.pending_security_updates = len(names)
        level.pending_updates += names
        level.notes.append("security updates from dnf updateinfo")

    # ------------------------------------------------------------------ agent
    def agent_info(self) -> AgentInfo:
        info = AgentInfo(service_name=AGENT_UNIT, live=self.live)
        info.installed = self.inside(AGENT_CONF).is_file() or self.inside(AGENT_BINARY).is_file()
        info.version = self._first_line(AGENT_VERSION_FILE)
        if self.live:
            self._service_from_systemd(info)
        if info.service_state == "unknown":
            self._service_from_unit_files(info)
        info.processes = processes_named(self.processes, [AGENT_PROCESS])
        return info

    def _service_from_systemd(self, info: AgentInfo) -> None:
        result = self.runner(("systemctl", "show", AGENT_UNIT, f"--property={SYSTEMCTL_PROPERTIES}"),
                             timeout=15)
        props = parse_key_values(result.text()) if result.ok else {}
        load = props.get("LoadState", "")
        if not load:
            info.notes.append(f"systemctl show {AGENT_UNIT} gave no answer ({describe_failure(result)})")
            return
        active, sub = props.get("ActiveState", ""), props.get("SubState", "")
        if load == "not-found":
            info.service_state = "absent"
            info.notes.append(f"systemd does not know {AGENT_UNIT}")
            return
        info.service_state = "running" if active in ("active", "reloading", "deactivating") else "stopped"
        info.service_enabled = UNIT_FILE_ENABLED.get(props.get("UnitFileState", ""))
        if load != "loaded":
            info.notes.append(f"{AGENT_UNIT} load state is {load}")
        if active not in ("active", "inactive") or sub not in ("running", "dead"):
            info.notes.append(f"systemd reports {AGENT_UNIT} {active} ({sub})")
        pid = props.get("MainPID", "0")
        if pid.isdigit() and int(pid) > 0:
            info.notes.append(f"systemd main PID {pid}")

    def _service_from_unit_files(self, info: AgentInfo) -> None:
        """What the unit files say when systemd cannot be asked: whether the unit is
        installed and enabled (a ``*.wants/`` link) or masked; never whether it runs."""
        units = [self.inside(folder) / AGENT_UNIT for folder in UNIT_DIRS]
        present = [u for u in units if os.path.lexists(u)]
        if not present:
            if self.inside("/etc/init.d/jcagent").is_file():
                info.notes.append("SysV init script /etc/init.d/jcagent present (no systemd unit)")
            else:
                info.service_state = "absent"
            return
        if present[0].is_symlink() and os.readlink(present[0]) == "/dev/null":
            info.service_enabled = False
            info.notes.append(f"{AGENT_UNIT} is masked")
            return
        # An enable link's target is an absolute path of the examined system: test
        # the link itself, never what it points to on this machine.
        config = self.inside("/etc/systemd/system")
        info.service_enabled = any(os.path.lexists(config / folder / AGENT_UNIT)
                                   for folder in self._entries("/etc/systemd/system")
                                   if folder.endswith(".wants"))
        info.notes.append("service state unknown: only the unit files could be read")

    # ------------------------------------------------------------------ users
    def local_users(self) -> list[tuple[str, str]]:
        """(user name, home) of root and of regular users (UID_MIN..UID_MAX of
        login.defs) whose home exists under the root, from ``etc/passwd``."""
        low, high = self._uid_range()
        users: dict[str, str] = {}
        for line in pkgdb.iter_lines(self.inside("/etc/passwd")):
            fields = line.split(":")
            if len(fields) < 7 or not fields[2].isdigit():
                continue
            name, uid, home = fields[0], int(fields[2]), fields[5] or ("/root" if fields[2] == "0" else "")
            if (uid == 0 or low <= uid <= high) and home.startswith("/") and home not in ("/", "/nonexistent"):
                if self.inside(home).is_dir() and home not in users.values():
                    users[name] = home
        return list(users.items())

    def _uid_range(self) -> tuple[int, int]:
        """UID_MIN and UID_MAX from login.defs (``NAME value`` lines), 1000..60000 by default."""
        limits = {"UID_MIN": 1000, "UID_MAX": 60000}
        for line in (self.read_text("/etc/login.defs", limit=256 * 1024) or "").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in limits and words[1].isdigit():
                limits[words[0]] = int(words[1])
        return limits["UID_MIN"], limits["UID_MAX"]

    def user_homes(self) -> list[str]:
        return [home for _, home in self.local_users()]

    # ------------------------------------------------------------------ sources
    def sources(self) -> list:
        """Everything agent-footprint.md lists for Linux, declared for ``gather``.

        ``/var/log/jc*`` overlaps the named agent logs on purpose: the named ones are
        recorded as absent when missing, the glob catches names not known yet.
        ``gather`` copies a file matched by several sources once.
        """
        return (self._agent_log_sources() + self._agent_config_sources() + self._system_sources()
                + self._user_sources() + self._command_sources())

    @staticmethod
    def _agent_log_sources() -> list[FileSource]:
        return agent_log_sources(
            FileSource(f"{AGENT_DIR}/jcagentInstall.log", "logs/agent", "agent-logs"))

    @staticmethod
    def _agent_config_sources() -> list[FileSource]:
        return agent_config_sources(
            *(config_source(f"{d}/{AGENT_UNIT}") for d in UNIT_DIRS))

    @staticmethod
    def _system_sources() -> list[FileSource]:
        """Logs the agent's work shows up in (logins, sudo, sshd, package changes)."""
        system = "logs/system"
        return [FileSource(path, system, "system-logs", kind="system") for path in (
            "/var/log/auth.log", "/var/log/secure", "/var/log/syslog", "/var/log/messages",
            "/var/log/apt/history.log", "/var/log/dpkg.log", "/var/log/dnf.rpm.log", YUM_LOG,
            "/var/log/zypp/history",
        )]

    def _user_sources(self) -> list[FileSource]:
        found = []
        for user, home in self.local_users():
            found += [
                FileSource(f"{home}/.config/JumpCloud Password Manager/logs", "logs/users/{user}/password-manager",
                           "user-logs", recursive=True, user=user, within=home),
                FileSource(f"{home}/.config/JumpCloud-Remote-Assist/logs", "logs/users/{user}/remote-assist",
                           "user-logs", recursive=True, user=user, within=home),
            ]
        return found

    @staticmethod
    def _command_sources() -> list[CommandSource]:
        def cmd(dest: str, *argv: str, timeout: float = 30.0) -> CommandSource:
            return CommandSource(tuple(argv), dest, "commands", timeout=timeout)

        return [
            cmd("systemctl-status-jcagent.txt", "systemctl", "status", "jcagent", "--no-pager", timeout=15),
            cmd("journalctl-jcagent.txt", "journalctl", "-u", "jcagent", "--no-pager", "-n", "5000",
                timeout=60),
            cmd("uname-a.txt", "uname", "-a", timeout=10),
            cmd("df-h.txt", "df", "-h"),
            cmd("ip-addr.txt", "ip", "addr", timeout=10),
            cmd("ip-route.txt", "ip", "route", timeout=10),
            cmd("ps-aux.txt", "ps", "aux"),
            cmd("timedatectl.txt", "timedatectl", "status", timeout=10),
        ]

    # ------------------------------------------------------------------ never
    def never_collect(self) -> list[str]:
        """The agent's identity files: the defaults in /opt/jc and whatever paths
        jcagent.conf names (relative ones taken from its install directory)."""
        paths = [f"{AGENT_DIR}/{name}" for name in AGENT_IDENTITY_FILES]
        conf = self._agent_conf()
        base = conf.get("agentInstallDir") if isinstance(conf.get("agentInstallDir"), str) else AGENT_DIR
        for key in AGENT_CONF_IDENTITY_KEYS:
            value = conf.get(key)
            if isinstance(value, str) and value.strip():
                paths.append(posixpath.normpath(posixpath.join(base or AGENT_DIR, value.strip())))
        return list(dict.fromkeys(paths))

    def _agent_conf(self) -> dict[str, Any]:
        try:
            conf = json.loads(self.read_text(AGENT_CONF, limit=CONF_MAX_BYTES) or "{}")
        except ValueError:
            return {}
        return conf if isinstance(conf, dict) else {}
