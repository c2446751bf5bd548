"""Windows: OS facts from the registry, the JumpCloud agent's files, services and hotfixes.

Facts come from a :class:`~platforms.base.RegistryReader` (``winreg`` live, the hive
files of a mounted volume offline, a dict in tests), files under ``root`` and, when
the runner can reach the examined machine, a few commands (``sc``, PowerShell's
Get-HotFix).  Whatever only a command can tell is "unknown" offline, with the
registry's answer where it has one (service start type, CBS packages).
"""
from __future__ import annotations

import json
import platform as pyplatform
import re
import socket
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Mapping, Optional

from collector.sources import CommandSource, FileSource

from .base import (open_fact, AgentInfo, CommandRunner, Hotfix, OSInfo, PatchLevel, Platform,
                   ProcessLister, RegistryReader, processes_named)
from .winregistry import HiveRegistryReader, WinRegReader, filetime_to_datetime, fold

# --------------------------------------------------------------------------- where things are

PROGRAM_FILES_JC = r"C:\Program Files\JumpCloud"
CONTRIB = PROGRAM_FILES_JC + r"\Plugins\Contrib"
AGENT_EXE = PROGRAM_FILES_JC + r"\jumpcloud-agent.exe"
AGENT_CONF = CONTRIB + r"\jcagent.conf"
VERSION_TXT = CONTRIB + r"\version.txt"
WIN_TEMP = r"C:\Windows\Temp"
USERS_DIR = r"C:\Users"
PROGRAM_DATA_JC = r"C:\ProgramData\JumpCloud"

SERVICE_NAME = "jumpcloud-agent"
PROCESS_NAMES = ("jumpcloud-agent", "jumpcloudtray")

CURRENT_VERSION = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
CBS = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing"
CBS_PACKAGES = CBS + r"\Packages"
CBS_REBOOT_PENDING = CBS + r"\RebootPending"
WU_REBOOT_REQUIRED = (r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate"
                      r"\Auto Update\RebootRequired")
SESSION_MANAGER = r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager"
ENVIRONMENT = SESSION_MANAGER + r"\Environment"
COMPUTER_NAME = r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName"
SERVICES = r"HKLM\SYSTEM\CurrentControlSet\Services"
JC_AGENT_KEY = r"HKLM\SOFTWARE\JumpCloud\JumpCloud Agent"
AD_SYNC_KEY = r"HKLM\SOFTWARE\JumpCloud\AD Integration Sync Agent"
AD_IMPORT_KEY = r"HKLM\SOFTWARE\JumpCloud\AD Integration Import Agent"

# AD Import / AD Sync folders: JumpCloud's own log-gathering script uses the
# "AD Integration\JumpCloud AD ..." folders; older installs and help pages name the others.
AD_IMPORT_DIRS = (
    PROGRAM_FILES_JC + r"\AD Integration\JumpCloud AD Import",
    PROGRAM_FILES_JC + r"\AD Integration Import Agent",
)
AD_SYNC_LOGS = (
    PROGRAM_FILES_JC + r"\AD Sync\adsync.log",
    PROGRAM_FILES_JC + r"\JumpCloud AD Sync\JumpCloud_AD_Sync.log",
    PROGRAM_FILES_JC + r"\AD Integration\JumpCloud AD Sync\JumpCloud_AD_Sync.log",
)
AD_BRIDGE_CONFIG = r"C:\Program Files\JumpCloud AD Bridge\adint.config.json"

# Commands (argv exactly as run; tests replay recordings keyed by these).
SC_QUERY = ("sc", "query", SERVICE_NAME)
SC_QC = ("sc", "qc", SERVICE_NAME)
PROCESS_COMMAND_LINES = ("powershell", "-NoProfile", "-NonInteractive", "-Command",
                         "Get-CimInstance Win32_Process | ForEach-Object "
                         "{ \"$($_.ProcessId) $($_.Name) $($_.CommandLine)\" }")
GET_HOTFIX = ("powershell", "-NoProfile", "-NonInteractive", "-Command",
              "Get-HotFix | Select-Object HotFixID,Description,InstalledOn | ConvertTo-Json")
WEVTUTIL_AGENT = ("wevtutil", "qe", "Application",
                  "/q:*[System[Provider[@Name='jumpcloud-agent']]]", "/c:500", "/rd:true", "/f:text")

# Profile folders that are not people.
NOT_USER_PROFILES = {"public", "default", "default user", "all users"}

# CBS package CurrentState values (CbsInstallState).
CBS_INSTALLED = {0x70, 0x80}          # Installed, Permanent
CBS_INSTALL_PENDING = {0x60, 0x65}    # Install Pending, Partially Installed

# sc.exe state / start-type names (not translated on localized Windows, unlike the labels).
_SC_STATE = re.compile(r":\s*([1-7])\s+(STOPPED|START_PENDING|STOP_PENDING|RUNNING|"
                       r"CONTINUE_PENDING|PAUSE_PENDING|PAUSED)\b")
_SC_START = re.compile(r":\s*([0-4])\s+(BOOT_START|SYSTEM_START|AUTO_START|DEMAND_START|DISABLED)\b"
                       r"(\s+\(DELAYED\))?")
_SC_MISSING = re.compile(r"FAILED\s+1060\b")
ERROR_SERVICE_DOES_NOT_EXIST = 1060

START_TYPES = {0: "BOOT_START", 1: "SYSTEM_START", 2: "AUTO_START", 3: "DEMAND_START", 4: "DISABLED"}
STARTS_AT_BOOT = {"BOOT_START", "SYSTEM_START", "AUTO_START"}

_KB_PACKAGE = re.compile(r"^Package_(?:\d+_)?for_(KB\d+)~", re.IGNORECASE)
_KB_ANYWHERE = re.compile(r"\b(KB\d{6,8})\b", re.IGNORECASE)
_MS_DATE = re.compile(r"/Date\((-?\d+)(?:[+-]\d{4})?\)/")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_EN_LONG_DATE = re.compile(r"([A-Z][a-z]+) (\d{1,2}), (\d{4})")
_MONTHS = {m: i for i, m in enumerate(
    ("January", "February", "March", "April", "May", "June", "July", "August",
     "September", "October", "November", "December"), start=1)}


# --------------------------------------------------------------------------- parsers


@dataclass
class ServiceStatus:
    """What ``sc`` told about one service: ``state`` uses AgentInfo's words."""

    state: str = "unknown"          # running | stopped | unknown | absent
    raw_state: str = ""             # sc's word: RUNNING, START_PENDING ...
    start_type: str = ""            # AUTO_START, DEMAND_START, DISABLED ...
    delayed: bool = False

    @property
    def enabled(self) -> Optional[bool]:
        return (self.start_type in STARTS_AT_BOOT) if self.start_type else None


def parse_sc_query(text: str, returncode: Optional[int] = 0) -> ServiceStatus:
    """``sc query NAME`` output -> state.  Exit code / "FAILED 1060" means no such service."""
    if returncode == ERROR_SERVICE_DOES_NOT_EXIST or _SC_MISSING.search(text):
        return ServiceStatus(state="absent")
    match = _SC_STATE.search(text)
    if not match:
        return ServiceStatus()
    raw = match.group(2)
    state = {"RUNNING": "running", "STOPPED": "stopped"}.get(raw, "unknown")
    return ServiceStatus(state=state, raw_state=raw)


def parse_sc_qc(text: str) -> tuple[str, bool]:
    """``sc qc NAME`` output -> (START_TYPE word, delayed?); ("", False) if absent."""
    match = _SC_START.search(text)
    if not match:
        return "", False
    return match.group(2), bool(match.group(3))


@dataclass
class _Installed:
    """A hotfix plus the instant it was installed when the source knows it."""

    hotfix: Hotfix
    when: Optional[datetime] = None


def parse_hotfix_json(text: str, tz: Optional[tzinfo] = None) -> list[_Installed]:
    """``Get-HotFix | Select-Object HotFixID,Description,InstalledOn | ConvertTo-Json``.

    ConvertTo-Json gives one object for one hotfix and a list for more.  InstalledOn
    is the *local* date the update was installed and serializes three ways:
    Windows PowerShell 5.1 writes ``{"value": "/Date(ms)/", "DateTime": "Wednesday,
    November 15, 2023 12:00:00 AM"}``, a bare ``"/Date(ms)/"`` appears when the date
    has no extended properties, PowerShell 7 writes ISO ``"2023-11-15T00:00:00"``;
    it is null when Windows never recorded a date.  ``ms`` is local midnight as a
    UTC instant, so the local date is recovered in ``tz`` (default: this machine's
    zone, which is the examined machine's when the command ran live).
    """
    try:
        data = json.loads(text.strip().lstrip("\ufeff") or "null")
    except json.JSONDecodeError:
        return []
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        return []
    found = []
    for item in data:
        if not isinstance(item, Mapping):
            continue
        kb = str(item.get("HotFixID") or "").strip()
        if not kb:
            continue
        day, when = _installed_on(item.get("InstalledOn"), tz)
        found.append(_Installed(Hotfix(kb, day, str(item.get("Description") or "").strip()), when))
    return found


def _installed_on(raw: Any, tz: Optional[tzinfo]) -> tuple[Optional[date], Optional[datetime]]:
    """(local date, UTC instant or None) of one InstalledOn field in any of its forms."""
    display = ""
    if isinstance(raw, Mapping):
        display = str(raw.get("DateTime") or "")
        raw = raw.get("value")
    if not isinstance(raw, str):
        return None, None
    instant = None
    match = _MS_DATE.search(raw)
    if match:
        try:
            instant = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            instant = None
    day = _english_long_date(display)
    if day is None and instant is not None:
        day = instant.astimezone(tz).date() if tz else instant.astimezone().date()
    if day is None and not match:
        iso = _ISO_DATE.match(raw.strip())
        if not iso:
            return None, None
        day = _safe_date(*(int(g) for g in iso.groups()))
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            instant = parsed if parsed.tzinfo else None
        except ValueError:      # 7-digit fractions before Python 3.11
            instant = None
    return day, instant


def _safe_date(year: int, month: int, day: int) -> Optional[date]:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _english_long_date(text: str) -> Optional[date]:
    """The date in an en-US long date ("Wednesday, November 15, 2023 ..."), else None."""
    match = _EN_LONG_DATE.search(text)
    if not match or match.group(1) not in _MONTHS:
        return None
    return _safe_date(int(match.group(3)), _MONTHS[match.group(1)], int(match.group(2)))


def cbs_hotfixes(registry: RegistryReader) -> tuple[list[_Installed], list[str]]:
    """Installed and install-pending KBs from Component Based Servicing packages.

    Each ``Packages\\Package_for_KB...`` (or ``Package_N_for_KB...``) subkey is one
    package of an update; an update has many, so KB ids are merged keeping the
    newest install time (InstallTimeHigh/Low, a FILETIME).  Cumulative updates are
    ``Package_for_RollupFix`` whose KB only shows in InstallLocation/InstallName.
    """
    newest: dict[str, Optional[datetime]] = {}
    pending: set[str] = set()
    for name in registry.subkeys(CBS_PACKAGES):
        match = _KB_PACKAGE.match(name)
        is_rollup = "rollupfix" in fold(name) or "servicingstack" in fold(name)
        if not match and not is_rollup:
            continue
        values = {fold(k): v for k, v in registry.values(CBS_PACKAGES + "\\" + name).items()}
        kb = match.group(1).upper() if match else _kb_from_values(values)
        if not kb:
            continue
        state = values.get("currentstate")
        if state in CBS_INSTALL_PENDING:
            pending.add(kb)
        if state not in CBS_INSTALLED:
            continue
        when = _filetime_pair(values.get("installtimehigh"), values.get("installtimelow"))
        if kb not in newest or (when and (newest[kb] is None or when > newest[kb])):
            newest[kb] = when
    found = [_Installed(Hotfix(kb, when.date() if when else None), when)
             for kb, when in newest.items()]
    found.sort(key=lambda f: (f.when or datetime.min.replace(tzinfo=timezone.utc), f.hotfix.id),
               reverse=True)
    return found, sorted(pending - set(newest))


def _kb_from_values(values: Mapping[str, Any]) -> str:
    for field_name in ("installlocation", "installname"):
        text = values.get(field_name)
        if isinstance(text, str):
            match = _KB_ANYWHERE.search(text)
            if match:
                return match.group(1).upper()
    return ""


def _filetime_pair(high: Any, low: Any) -> Optional[datetime]:
    if not isinstance(high, int) or not isinstance(low, int):
        return None
    return filetime_to_datetime((high << 32) | low)


def _decode_text(raw: bytes) -> str:
    """Small text files written by Windows tools: UTF-8 (with or without BOM) or UTF-16."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    return raw.decode("utf-8-sig", errors="replace")


# --------------------------------------------------------------------------- platform


class Windows(Platform):
    """Windows 10/11 and Windows Server, live or from a mounted volume."""

    family = "windows"

    def __init__(self, root: Path | str = "C:\\", runner: Optional[CommandRunner] = None,
                 processes: Optional[ProcessLister] = None, live: Optional[bool] = None,
                 registry: Optional[RegistryReader] = None, now: Optional[datetime] = None):
        super().__init__(root, runner=runner, processes=processes, live=live)
        if registry is None:
            on_windows = sys.platform.startswith("win")
            registry = WinRegReader() if self.live and on_windows else HiveRegistryReader(self.root)
        self.registry: RegistryReader = registry
        # Aware, so it compares with the UTC install times (a naive value is local time).
        self.now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)

    # helpers -------------------------------------------------------------------------
    @property
    def _commands_reach_system(self) -> bool:
        """True when the runner runs commands on the examined machine (never offline)."""
        return bool(getattr(self.runner, "live", False))

    def _exists(self, system_path: str) -> bool:
        return self.path(system_path).exists()

    def _read_small(self, system_path: str, limit: int = 1024 * 1024) -> Optional[str]:
        try:
            with open_fact(self.path(system_path)) as fh:
                return _decode_text(fh.read(limit))
        except OSError:
            return None

    def _registry_source(self) -> str:
        if isinstance(self.registry, HiveRegistryReader):
            return "offline hive Windows\\System32\\config\\SOFTWARE"
        return "registry"

    # facts ---------------------------------------------------------------------------
    def os_info(self) -> OSInfo:
        cv = {fold(k): v for k, v in self.registry.values(CURRENT_VERSION).items()}
        info = OSInfo(family="windows", source=f"{CURRENT_VERSION} ({self._registry_source()})")
        if not cv:
            info.source += ": key not found"
            return info
        build = str(cv.get("currentbuild") or cv.get("currentbuildnumber") or "")
        ubr = cv.get("ubr")
        major, minor = cv.get("currentmajorversionnumber"), cv.get("currentminorversionnumber")
        if isinstance(major, int) and isinstance(minor, int):
            nt_version = f"{major}.{minor}"
        else:
            nt_version = str(cv.get("currentversion") or "")
        installation_type = str(cv.get("installationtype") or "")
        edition = str(cv.get("editionid") or "")
        name = str(cv.get("productname") or "")
        server = (installation_type.startswith("Server") or "server" in fold(name)
                  or fold(edition).startswith("server"))
        if not server and build.isdigit() and int(build) >= 22000:
            # Windows 11 kept "Windows 10" in ProductName; the build number is the truth.
            name = re.sub(r"\bWindows 10\b", "Windows 11", name)
        info.name = name
        info.id = "windows-server" if server else "windows"
        info.version = str(cv.get("displayversion") or cv.get("releaseid") or "")
        info.version_id = f"{nt_version}.{build}" if nt_version and build else build
        info.build = build
        info.edition = edition
        info.installation_type = installation_type
        info.kernel = info.version_id + (f".{ubr}" if isinstance(ubr, int) else "")
        if self.live:
            info.arch = pyplatform.machine()
            info.hostname = socket.gethostname()
        else:
            info.arch = str(self.registry.value(ENVIRONMENT, "PROCESSOR_ARCHITECTURE") or "")
            info.hostname = str(self.registry.value(COMPUTER_NAME, "ComputerName") or "")
        return info

    def patch_level(self) -> PatchLevel:
        level = PatchLevel()
        ubr = self.registry.value(CURRENT_VERSION, "UBR")
        level.ubr = ubr if isinstance(ubr, int) else None
        cbs_installed, cbs_pending = cbs_hotfixes(self.registry)
        installed = self._hotfixes(level.notes)
        if not installed and cbs_installed:
            installed = cbs_installed
            level.notes.append("hotfixes from Component Based Servicing packages in the registry")
        level.pending_updates = [f"{kb} (install pending)" for kb in cbs_pending]
        latest = self.now + timedelta(days=1)
        for item in installed:
            if item.when and item.when > latest:
                level.notes.append(f"{item.hotfix.id}: install date {item.when:%Y-%m-%d} "
                                   "is in the future; ignored")
                item.hotfix.installed_on, item.when = None, None
        level.hotfixes = [item.hotfix for item in installed]
        instants = [item.when or datetime.combine(item.hotfix.installed_on, datetime.min.time(), timezone.utc)
                    for item in installed if item.when or item.hotfix.installed_on]
        level.last_update = max(instants) if instants else None
        level.pending_reboot = self._pending_reboot(level.notes)
        return level

    def _hotfixes(self, notes: list[str]) -> list[_Installed]:
        """Get-HotFix when commands reach the machine; [] (caller falls back to CBS) else."""
        if not self._commands_reach_system:
            return []
        result = self.runner(GET_HOTFIX, timeout=60)
        if not result.ok:
            notes.append(f"Get-HotFix failed ({result.error or f'exit {result.returncode}'}); "
                         "reading the registry instead")
            return []
        found = parse_hotfix_json(result.text())
        if found:
            notes.append("hotfixes from Get-HotFix")
        return found

    def _pending_reboot(self, notes: list[str]) -> Optional[bool]:
        reasons = []
        if self.registry.exists(CBS_REBOOT_PENDING):
            reasons.append("Component Based Servicing\\RebootPending")
        if self.registry.exists(WU_REBOOT_REQUIRED):
            reasons.append("WindowsUpdate\\Auto Update\\RebootRequired")
        renames = self.registry.value(SESSION_MANAGER, "PendingFileRenameOperations")
        if (isinstance(renames, list) and any(renames)) or (isinstance(renames, (str, bytes)) and renames):
            reasons.append("Session Manager\\PendingFileRenameOperations")
        if reasons:
            notes.append("reboot pending: " + ", ".join(reasons))
            return True
        if not self.registry.exists(CURRENT_VERSION):
            notes.append("pending reboot unknown: the registry could not be read")
            return None
        return False

    def agent_info(self) -> AgentInfo:
        agent = AgentInfo(service_name=SERVICE_NAME, live=self.live)
        agent.installed = (self._exists(AGENT_EXE) or self._exists(AGENT_CONF)
                           or self.registry.exists(JC_AGENT_KEY))
        version = self._read_small(VERSION_TXT, limit=4096)
        agent.version = version.strip().splitlines()[0].strip() if version and version.strip() else ""
        status = self._service_status()
        agent.service_state = status.state
        agent.service_enabled = status.enabled
        if status.raw_state and status.state == "unknown":
            agent.notes.append(f"service {SERVICE_NAME} is {status.raw_state}")
        if status.delayed:
            agent.notes.append(f"service {SERVICE_NAME} starts automatically (delayed)")
        agent.processes = processes_named(self.processes, PROCESS_NAMES)
        config_file = self.registry.value(JC_AGENT_KEY, "ConfigFile")
        if isinstance(config_file, str) and config_file and fold(config_file) != fold(AGENT_CONF):
            agent.notes.append(f"registry names the agent config {config_file}")
        agent.notes.extend(self._ad_agents())
        return agent

    def _service_status(self) -> ServiceStatus:
        """sc query / sc qc when they can run; the SYSTEM hive's Services key otherwise."""
        status = ServiceStatus()
        if self._commands_reach_system:
            query = self.runner(SC_QUERY, timeout=15)
            if query.error is None and not query.timed_out:
                status = parse_sc_query(query.text(), query.returncode)
            if status.state != "absent":
                config = self.runner(SC_QC, timeout=15)
                if config.ok:
                    status.start_type, status.delayed = parse_sc_qc(config.text())
        if status.state == "absent":
            return status
        if not status.start_type:
            start = self.registry.value(SERVICES + "\\" + SERVICE_NAME, "Start")
            if isinstance(start, int):
                status.start_type = START_TYPES.get(start, "")
                delayed = self.registry.value(SERVICES + "\\" + SERVICE_NAME, "DelayedAutostart")
                status.delayed = status.start_type == "AUTO_START" and delayed == 1
            elif status.state == "unknown" and self.registry.exists(SERVICES) \
                    and not self.registry.exists(SERVICES + "\\" + SERVICE_NAME):
                status.state = "absent"
        return status

    def _ad_agents(self) -> list[str]:
        """Notes naming the AD Sync / AD Import agents found, and where."""
        notes = []
        found = [("AD Sync", AD_SYNC_KEY, [p.rsplit("\\", 1)[0] for p in AD_SYNC_LOGS]),
                 ("AD Import", AD_IMPORT_KEY, list(AD_IMPORT_DIRS))]
        for label, key, folders in found:
            where = [key] if self.registry.exists(key) else []
            where += [f for f in folders if self.path(f).is_dir()]
            if where:
                notes.append(f"{label} agent present: " + ", ".join(where))
        if self._exists(AD_BRIDGE_CONFIG):
            notes.append(f"legacy AD Bridge present: {AD_BRIDGE_CONFIG}")
        return notes

    def user_homes(self) -> list[str]:
        """``C:\\Users\\<name>`` for every real profile folder (not Public, Default...)."""
        try:
            entries = sorted(self.path(USERS_DIR).iterdir(), key=lambda e: fold(e.name))
        except OSError:
            return []
        return [f"{USERS_DIR}\\{entry.name}" for entry in entries
                if fold(entry.name) not in NOT_USER_PROFILES
                and entry.is_dir() and not entry.is_symlink()]

    # what to collect -----------------------------------------------------------------
    def sources(self) -> list:
        return [*self._agent_sources(), *self._ad_sources(), *self._system_sources(),
                *self._user_sources(), *self._command_sources()]

    @staticmethod
    def _agent_sources() -> list[FileSource]:
        logs = [f"{WIN_TEMP}\\{name}" for name in (
            "jcagent.log", "jcagent.log.*", "jcagent_updater.log", "jcUpdate.log",
            "jcUpgradeScript.log", "jcExecUpgradeScript.log", "jcUninstallUpgrade.log",
            "jc_raasvc.log", "jcAdmu.log", "jcagentforceuninstall.log")]
        sources = [FileSource(p, "logs/agent", "agent-logs") for p in logs]
        nested = [
            (r"C:\Windows\Logs\JCCredentialProvider\provider.log", "credential-provider", False),
            (PROGRAM_DATA_JC + r"\CredentialProvider\*.log", "credential-provider", False),
            (PROGRAM_DATA_JC + r"\CredentialProvider\*.json", "credential-provider", False),
            (PROGRAM_DATA_JC + r"\DependencyLoader\loader.log", "dependency-loader", False),
            (PROGRAM_DATA_JC + r"\Tray", "tray", True),
            (r"C:\Windows\System32\config\systemprofile\AppData\Roaming\JumpCloud-Remote-Assist\logs\*.log",
             "remote-assist", False),
        ]
        sources += [FileSource(p, f"logs/agent/{sub}", "agent-logs", recursive=rec)
                    for p, sub, rec in nested]
        configs = [
            (AGENT_CONF, "json"), (CONTRIB + r"\lockoutCache.json", "json"),
            (CONTRIB + r"\managedUsers.json", "json"), (VERSION_TXT, None),
            (PROGRAM_FILES_JC + r"\policyConf.json", "json"),
            (r"C:\Windows\System32\drivers\etc\jcagent-proxy.conf", None),
        ]
        sources += [FileSource(p, "config/agent", "agent-config", kind="config",
                               timestamped=False, redact=redact) for p, redact in configs]
        return sources

    @staticmethod
    def _ad_sources() -> list[FileSource]:
        """AD Import / AD Sync / legacy AD Bridge, one bundle folder per install folder
        so same-named files (config.json) from two folders never collide."""
        sources = [FileSource(WIN_TEMP + r"\JumpCloud_AD_Integration.log", "logs/adimport", "ad-import")]
        for folder in AD_IMPORT_DIRS:
            sub = _slug(folder)
            sources.append(FileSource(folder + r"\JumpCloud_AD_Import_Grpc*.log",
                                      f"logs/adimport/{sub}", "ad-import"))
            sources += [FileSource(folder + "\\" + name, f"config/adimport/{sub}", "ad-import",
                                   kind="config", timestamped=False, redact="json")
                        for name in ("jcadimportagent.config", "jcadimportagent.config.json")]
        for log in AD_SYNC_LOGS:
            folder = log.rsplit("\\", 1)[0]
            sub = _slug(folder)
            sources.append(FileSource(log, f"logs/adsync/{sub}", "ad-sync"))
            sources.append(FileSource(folder + r"\config.json", f"config/adsync/{sub}", "ad-sync",
                                      kind="config", timestamped=False, redact="json"))
        # Holds the AD service account password in clear: only the redacted rendering.
        sources.append(FileSource(AD_BRIDGE_CONFIG, "config/adsync/ad-bridge", "ad-sync",
                                  kind="config", timestamped=False, redact="json"))
        return sources

    @staticmethod
    def _system_sources() -> list[FileSource]:
        """Servicing logs that explain a failed or pending update (tails, time window)."""
        return [FileSource(p, "logs/system", "system-logs", kind="system") for p in (
            r"C:\Windows\Logs\CBS\CBS.log", r"C:\Windows\Logs\DISM\dism.log",
            r"C:\Windows\SoftwareDistribution\ReportingEvents.log")]

    def _user_sources(self) -> list[FileSource]:
        sources = []
        for home in self.user_homes():
            user = home.rsplit("\\", 1)[1]
            temp = home + r"\AppData\Local\Temp"
            pwm = home + r"\AppData\Roaming\JumpCloud Password Manager"
            for path, sub in ((temp + r"\jc-user-agent.log", ""), (temp + r"\jcupdate.log", ""),
                              (temp + r"\jc-native-messaging-host*.log", ""),
                              (pwm + r"\logs\logs-live.log", "/password-manager"),
                              (pwm + r"\data\daemon\log\*.log", "/password-manager")):
                sources.append(FileSource(path, "logs/users/{user}" + sub, "user-logs", user=user,
                                          within=home))
        return sources

    @staticmethod
    def _command_sources() -> list[CommandSource]:
        return [
            CommandSource(SC_QUERY, "sc-query-jumpcloud-agent.txt", "commands", timeout=15),
            CommandSource(SC_QC, "sc-qc-jumpcloud-agent.txt", "commands", timeout=15),
            CommandSource(("systeminfo",), "systeminfo.txt", "commands", timeout=90),
            CommandSource(("ipconfig", "/all"), "ipconfig-all.txt", "commands", timeout=30),
            CommandSource(("tasklist", "/v"), "tasklist-v.txt", "commands", timeout=60),
            # tasklist shows no command lines; these do, and redaction reads them as argv
            # (a `-Password X` or `/user:DOM\\u PASS` of another process is hidden, its neighbours kept).
            CommandSource(PROCESS_COMMAND_LINES, "process-command-lines.txt", "commands", timeout=60),
            CommandSource(GET_HOTFIX, "get-hotfix.json", "commands", timeout=60),
            CommandSource(WEVTUTIL_AGENT, "eventlog-application-jumpcloud-agent.txt", "commands",
                          timeout=60),
        ]

    def never_collect(self) -> list[str]:
        """The agent's identity files, in Contrib and wherever jcagent.conf (and the conf
        the registry names) says they are.  Exact paths: ``*.key``/``*.pem``/... by name
        are refused centrally in ``collector.gather``."""
        paths = [CONTRIB + r"\client.key", CONTRIB + r"\client.crt", CONTRIB + r"\ca.crt"]
        for conf in self._agent_conf_paths():
            paths += self._identity_paths_in(conf)
        return list(dict.fromkeys(paths))

    def _agent_conf_paths(self) -> list[str]:
        confs = [AGENT_CONF]
        named = self.registry.value(JC_AGENT_KEY, "ConfigFile")
        if isinstance(named, str) and re.match(r"^[A-Za-z]:\\", named):
            confs.append(named)
        return confs

    def _identity_paths_in(self, conf_path: str) -> list[str]:
        text = self._read_small(conf_path, limit=1024 * 1024)
        if not text:
            return []
        try:
            conf = json.loads(text)
        except json.JSONDecodeError:
            return []
        if not isinstance(conf, Mapping):
            return []
        folder = conf_path.rsplit("\\", 1)[0]
        found = []
        for key in ("clientKey", "clientCrt", "caCrt"):
            value = conf.get(key)
            if isinstance(value, str) and value.strip():
                value = value.strip().replace("/", "\\")
                found.append(value if re.match(r"^[A-Za-z]:\\", value) else f"{folder}\\{value}")
        return found


def _slug(folder: str) -> str:
    """``C:\\Program Files\\JumpCloud\\AD Integration\\JumpCloud AD Sync`` ->
    ``ad-integration-jumpcloud-ad-sync`` (the part below the JumpCloud folder)."""
    below = folder[len(PROGRAM_FILES_JC) + 1:] if fold(folder).startswith(fold(PROGRAM_FILES_JC)) else folder
    return re.sub(r"[^a-z0-9]+", "-", below.lower()).strip("-")

