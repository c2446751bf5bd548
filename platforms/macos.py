"""macOS: version, patch level and the JumpCloud agent, from a root and a command runner.

Live, the authoritative answers come from commands (``sw_vers``, ``launchctl print``,
``uname``, ``scutil``); on a mounted disk or fixture tree (``--root``) they come from
the files those commands read: ``SystemVersion.plist`` (and its Rapid Security
Response twin in the OS cryptex), ``com.apple.SoftwareUpdate.plist``,
``InstallHistory.plist``, the launchd plists and launchd's override database.
What only a command can tell (kernel, architecture, whether launchd runs the agent)
stays unknown offline, and the notes say so.

Plists are read with :mod:`plistlib` (XML or binary) under a size cap, except
``InstallHistory.plist``, which grows for the life of the machine and is streamed
entry by entry when it is XML (it is on every macOS release seen so far).
"""
from __future__ import annotations

import json
import plistlib
import socket
import xml.parsers.expat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Optional

from .posix_agent import (AGENT_CONF, AGENT_CONF_IDENTITY_KEYS, AGENT_DIR, AGENT_VERSION_FILE,
                          agent_config_sources, agent_log_sources, config_source)
from collector.sources import CommandSource, FileSource

from .base import (
    open_fact,
    AgentInfo, CommandResult, CommandRunner, OSInfo, PatchLevel, Platform, ProcessLister,
    processes_named,
)

# --------------------------------------------------------------------------- paths

SYSTEM_VERSION_PLIST = "/System/Library/CoreServices/SystemVersion.plist"
# A Rapid Security Response updates the OS cryptex, not the sealed system volume:
# its ProductVersionExtra and build live only in this copy.
CRYPTEX_VERSION_PLIST = "/System/Cryptexes/OS/System/Library/CoreServices/SystemVersion.plist"
SOFTWARE_UPDATE_PLIST = "/Library/Preferences/com.apple.SoftwareUpdate.plist"
INSTALL_HISTORY_PLIST = "/Library/Receipts/InstallHistory.plist"
SYSTEM_PREFERENCES_PLIST = "/Library/Preferences/SystemConfiguration/preferences.plist"
# launchd's own record of `launchctl enable/disable` for the system domain; it wins
# over the legacy `Disabled` key of a job's plist.
LAUNCHD_DISABLED_PLIST = "/private/var/db/com.apple.xpc.launchd/disabled.plist"

AGENT_BINARY = f"{AGENT_DIR}/bin/jumpcloud-agent"
AGENT_SERVICE = "com.jumpcloud.darwin-agent"
AGENT_PROCESS = "jumpcloud-agent"
LAUNCH_DAEMONS = "/Library/LaunchDaemons"
LAUNCH_AGENTS = "/Library/LaunchAgents"
# Launch daemons whose launchd state is worth a `launchctl print` in the bundle.
AGENT_DAEMONS = (AGENT_SERVICE, "com.jumpcloud.agent-updater", "com.jumpcloud.JumpCloudGoHelper")

# Identity files of the agent: never collected, whatever else names them.
AGENT_IDENTITY_FILES = ("client.key", "client.crt", "ca.crt")
SECURE_TOKEN_CREDS = "/var/run/JumpCloud-SecureToken-Creds.txt"
DEVICE_TRUST_KEYCHAIN = "Library/Keychains/jumpcloud-device-trust-keychain-db"

PLIST_MAX_BYTES = 4 * 1024 * 1024              # preference and version plists are KBs
INSTALL_HISTORY_MAX_BYTES = 32 * 1024 * 1024   # binary form must be loaded whole
INSTALL_HISTORY_STREAM_MAX_BYTES = 256 * 1024 * 1024  # XML is streamed; bound the time
CONF_MAX_BYTES = 1024 * 1024
STALE_CHECK_DAYS = 14   # older Software Update scans make the pending list doubtful

# processName values InstallHistory.plist gives Apple software updates, old and new.
UPDATE_PROCESSES = frozenset({"softwareupdated", "Software Update", "softwareupdate"})

# Marketing names: from 11 on keyed by the major version, before that by "10.minor".
# 10.16 is what Big Sur reports to software built against old SDKs.
MARKETING_NAMES = {
    "10.0": "Cheetah", "10.1": "Puma", "10.2": "Jaguar", "10.3": "Panther",
    "10.4": "Tiger", "10.5": "Leopard", "10.6": "Snow Leopard", "10.7": "Lion",
    "10.8": "Mountain Lion", "10.9": "Mavericks", "10.10": "Yosemite",
    "10.11": "El Capitan", "10.12": "Sierra", "10.13": "High Sierra", "10.14": "Mojave",
    "10.15": "Catalina", "10.16": "Big Sur",
    "11": "Big Sur", "12": "Monterey", "13": "Ventura", "14": "Sonoma", "15": "Sequoia",
    "26": "Tahoe",
}


def marketing_name(version: str) -> str:
    """``"14.4.1"`` -> ``"Sonoma"``, ``"10.15.7"`` -> ``"Catalina"``; ``""`` when unknown."""
    parts = version.strip().split(".")
    if not parts or not parts[0].isdigit():
        return ""
    key = f"{parts[0]}.{parts[1]}" if parts[0] == "10" and len(parts) > 1 else parts[0]
    return MARKETING_NAMES.get(key, "")


# --------------------------------------------------------------------------- parsers


def parse_sw_vers(text: str) -> dict[str, str]:
    """``sw_vers`` output (``ProductVersion:<tabs>14.4.1`` lines) into a dict."""
    facts: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            facts[key.strip()] = value.strip()
    return facts


def parse_launchctl_print(text: str) -> dict[str, str]:
    """The top-level ``key = value`` lines of ``launchctl print <domain>/<label>``.

    Nested blocks (coalitions, endpoints, environment) repeat keys such as ``state``
    and ``active count`` with other meanings, so only lines directly inside the
    service's own block count.
    """
    facts: dict[str, str] = {}
    depth = 0
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("{"):
            depth += 1
        elif line == "}":
            depth = max(depth - 1, 0)
        elif depth == 1 and " = " in line:
            key, _, value = line.partition(" = ")
            facts.setdefault(key.strip(), value.strip())
    return facts


def launchctl_service_missing(result: CommandResult) -> bool:
    """True when ``launchctl print`` said the service is not loaded (exit 113,
    ``Could not find service "<label>" in domain for system``)."""
    said = (result.stderr + result.stdout).decode("utf-8", errors="replace")
    return result.returncode == 113 or "Could not find service" in said


def as_utc(value: Any) -> Optional[datetime]:
    """A plist date (naive UTC from plistlib, or a ``defaults``-style string) as an
    aware UTC datetime; None for anything else."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    if isinstance(value, str):
        for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S %z"):
            try:
                return as_utc(datetime.strptime(value.strip(), fmt))
            except ValueError:
                continue
    return None


def _forbid_entities(*_args: Any) -> None:
    # The same refusal plistlib makes: entity declarations are how XML bombs work.
    raise ValueError("XML entity declarations are not supported in plist files")


def iter_xml_plist_entries(stream, chunk_size: int = 64 * 1024,
                           max_text: int = 4096) -> Iterator[dict[str, Any]]:
    """Each dict of a plist whose top level is an array, streamed: memory stays
    bounded by one entry whatever the file size (InstallHistory.plist grows forever).

    Only scalar values of an entry are kept (strings, dates, numbers, booleans);
    nested arrays and dicts (``packageIdentifiers``) are skipped.
    """
    parser = xml.parsers.expat.ParserCreate()
    parser.EntityDeclHandler = _forbid_entities
    path: list[str] = []
    ready: list[dict[str, Any]] = []
    entry: Optional[dict[str, Any]] = None
    key: Optional[str] = None
    text: list[str] = []

    def start(name: str, _attrs: dict) -> None:
        nonlocal entry
        path.append(name)
        text.clear()
        if path == ["plist", "array", "dict"]:
            entry = {}

    def end(name: str) -> None:
        nonlocal entry, key
        depth = len(path)
        path.pop()
        if entry is None:
            return
        if depth == 3:                       # the entry's own </dict>
            ready.append(entry)
            entry, key = None, None
        elif depth == 4:                     # a direct child of the entry
            value = "".join(text)
            if name == "key":
                key = value
                return
            if key is not None:
                converted = _plist_scalar(name, value)
                if converted is not None:
                    entry[key] = converted
            key = None

    def chars(data: str) -> None:
        if entry is not None and len(path) == 4 and sum(map(len, text)) < max_text:
            text.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    while True:
        chunk = stream.read(chunk_size)
        parser.Parse(chunk, not chunk)
        yield from ready
        ready.clear()
        if not chunk:
            return


def _plist_scalar(tag: str, text: str) -> Any:
    if tag == "string":
        return text
    if tag == "date":
        return as_utc(text)
    if tag == "integer":
        return int(text.strip()) if text.strip().lstrip("-").isdigit() else None
    if tag == "real":
        try:
            return float(text)
        except ValueError:
            return None
    if tag in ("true", "false"):
        return tag == "true"
    return None


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` through nested dicts, or None where the path breaks."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def describe_update(item: dict[str, Any]) -> str:
    """One RecommendedUpdates entry as a name people read: ``macOS Sonoma 14.5``."""
    ident = str(item.get("Identifier") or item.get("Product Key") or "").strip()
    return name_with_version(str(item.get("Display Name") or "") or ident,
                             str(item.get("Display Version") or "")) or "unnamed update"


def name_with_version(name: str, version: str) -> str:
    """``name version``, without repeating a version the name already carries."""
    name, version = name.strip(), version.strip()
    return name if not version or version in name else f"{name} {version}".strip()


# --------------------------------------------------------------------------- facts


@dataclass
class VersionFacts:
    """What sw_vers (or SystemVersion.plist) told, and how it was found."""

    product_name: str = ""
    version: str = ""
    build: str = ""
    extra: str = ""
    source: str = ""
    notes: list[str] = field(default_factory=list)


class MacOS(Platform):
    """macOS behind the :class:`~platforms.base.Platform` interface."""

    family = "macos"

    def __init__(self, root: Path | str = "/", runner: Optional[CommandRunner] = None,
                 processes: Optional[ProcessLister] = None, live: Optional[bool] = None,
                 now: Optional[datetime] = None):
        super().__init__(root, runner=runner, processes=processes, live=live)
        # "now" only dates the notes (how old the last update check is), so a test
        # or a re-judged disk image gives the same words every time.
        self.now = as_utc(now) if now else datetime.now(timezone.utc)
        self._version: Optional[VersionFacts] = None

    # ------------------------------------------------------------------ helpers
    def _run_line(self, argv: tuple[str, ...], timeout: float = 15.0) -> str:
        """First line of a live command's output, or "" when it did not answer."""
        if not self.live:
            return ""
        result = self.runner(argv, timeout=timeout)
        lines = result.text().strip().splitlines() if result.ok else []
        return lines[0].strip() if lines else ""

    def _plist(self, system_path: str, limit: int = PLIST_MAX_BYTES) -> tuple[Any, str]:
        """A plist's content and "" -- or None and why not (absent is not an error)."""
        file = self.path(system_path)
        try:
            with open_fact(file) as fh:
                data = fh.read(limit + 1)
        except FileNotFoundError:
            return None, ""
        except OSError as exc:
            return None, f"{system_path}: cannot read ({exc.strerror or exc})"
        if len(data) > limit:
            return None, f"{system_path}: larger than {limit // (1024 * 1024)} MB, not read"
        try:
            return plistlib.loads(data), ""
        except Exception as exc:  # plistlib raises several types for bad input
            return None, f"{system_path}: not a valid plist ({exc})"

    def _plist_dict(self, system_path: str, notes: list[str]) -> Optional[dict]:
        data, problem = self._plist(system_path)
        if problem:
            notes.append(problem)
        if data is not None and not isinstance(data, dict):
            notes.append(f"{system_path}: unexpected top-level {type(data).__name__}")
            return None
        return data

    # ------------------------------------------------------------------ users
    def user_homes(self) -> list[str]:
        """``/Users/*`` folders (not ``Shared``, not dot-folders, not symlinks), and
        ``/var/root``, where root's Remote Assist logs live."""
        homes: list[str] = []
        users = self.path("/Users")
        try:
            entries = sorted(users.iterdir(), key=lambda p: p.name)
        except OSError:
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "Shared":
                continue
            if entry.is_dir() and not entry.is_symlink():
                homes.append(f"/Users/{entry.name}")
        if self.path("/var/root").is_dir():
            homes.append("/var/root")
        return homes

    @staticmethod
    def _user_label(home: str) -> str:
        return "root" if home == "/var/root" else PurePosixPath(home).name

    # ------------------------------------------------------------------ version
    def version_facts(self) -> VersionFacts:
        """ProductVersion, build and Rapid Security Response suffix: ``sw_vers`` live,
        else (or when it fails) SystemVersion.plist and its cryptex copy."""
        if self._version is None:
            notes: list[str] = []
            facts = self._version_from_sw_vers(notes) if self.live else None
            if facts is None:
                facts = self._version_from_plists(notes)
            facts.notes = notes + facts.notes
            self._version = facts
        return self._version

    def _version_from_sw_vers(self, notes: list[str]) -> Optional[VersionFacts]:
        result = self.runner(("sw_vers",), timeout=15)
        values = parse_sw_vers(result.text()) if result.ok else {}
        if not values.get("ProductVersion"):
            why = result.error or (f"exit {result.returncode}" if not result.ok else "no ProductVersion")
            notes.append(f"sw_vers gave no version ({why}); read {SYSTEM_VERSION_PLIST} instead")
            return None
        return VersionFacts(
            product_name=values.get("ProductName", ""), version=values["ProductVersion"],
            build=values.get("BuildVersion", ""), extra=values.get("ProductVersionExtra", ""),
            source="sw_vers",
        )

    def _version_from_plists(self, notes: list[str]) -> VersionFacts:
        base = self._plist_dict(SYSTEM_VERSION_PLIST, notes) or {}
        cryptex = self._plist_dict(CRYPTEX_VERSION_PLIST, notes) or {}
        if not base and not cryptex:
            notes.append(f"{SYSTEM_VERSION_PLIST} not found: the OS version is unknown")
            return VersionFacts()
        facts = VersionFacts(
            product_name=str(base.get("ProductName", "")), version=str(base.get("ProductVersion", "")),
            build=str(base.get("ProductBuildVersion", "")),
            extra=str(base.get("ProductVersionExtra", "")), source=SYSTEM_VERSION_PLIST,
        )
        if cryptex:
            same_release = not facts.version or cryptex.get("ProductVersion") == facts.version
            if same_release:
                facts.product_name = facts.product_name or str(cryptex.get("ProductName", ""))
                facts.version = facts.version or str(cryptex.get("ProductVersion", ""))
                facts.build = str(cryptex.get("ProductBuildVersion") or facts.build)
                facts.extra = str(cryptex.get("ProductVersionExtra") or facts.extra)
                facts.source = f"{facts.source} + {CRYPTEX_VERSION_PLIST}" if base else CRYPTEX_VERSION_PLIST
            else:
                notes.append(f"{CRYPTEX_VERSION_PLIST} is for {cryptex.get('ProductVersion')}, "
                             f"not {facts.version}: ignored")
        return facts

    def os_info(self) -> OSInfo:
        facts = self.version_facts()
        codename = marketing_name(facts.version)
        product = facts.product_name or "macOS"
        name = " ".join(p for p in (product, facts.version, facts.extra, codename) if p) if facts.version else ""
        if self.live:
            hostname = self._run_line(("scutil", "--get", "ComputerName")) or socket.gethostname()
        else:
            hostname = self._computer_name()
        return OSInfo(
            family="macos", name=name, id="macos", version=facts.version,
            version_id=facts.version, build=facts.build, codename=codename,
            kernel=self._run_line(("uname", "-r")), arch=self._run_line(("uname", "-m")),
            hostname=hostname, source=facts.source,
        )

    def _computer_name(self) -> str:
        """The Sharing name from SystemConfiguration's preferences, offline."""
        prefs = self._plist_dict(SYSTEM_PREFERENCES_PLIST, []) or {}
        for keys in (("System", "System", "ComputerName"), ("System", "System", "HostName"),
                     ("System", "Network", "HostNames", "LocalHostName")):
            value = dig(prefs, *keys)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return ""

    # ------------------------------------------------------------------ patches
    def patch_level(self) -> PatchLevel:
        """RSR suffix, newest Apple update installed, what Software Update recommends.

        ``last_update`` is the newest *install* of an Apple update recorded in
        InstallHistory.plist (security data such as XProtect, ``contentType``
        ``config-data``, is left out: it arrives daily and says nothing about the OS).
        ``LastFullSuccessfulDate`` in com.apple.SoftwareUpdate.plist is the last
        successful *check*; it stands in only when no install is recorded, and a
        note says so.  Whether a restart is pending is not recorded in either plist.
        """
        facts = self.version_facts()
        level = PatchLevel(product_version_extra=facts.extra, notes=list(facts.notes))
        prefs = self._plist_dict(SOFTWARE_UPDATE_PLIST, level.notes)
        last_check = as_utc(prefs.get("LastFullSuccessfulDate")) if prefs else None
        installed, where = self._newest_apple_install(level.notes)
        if installed is not None:
            level.last_update = installed
        elif last_check is not None:
            level.last_update = last_check
            level.notes.append("no Apple update install recorded; last_update is the last "
                               "successful Software Update check (LastFullSuccessfulDate)")
        else:
            level.notes.append("last update unknown: no Apple update in InstallHistory.plist "
                               "and no LastFullSuccessfulDate")
        if where:
            level.notes.append(where)
        self._pending_updates(prefs, last_check, level)
        level.notes.append("pending reboot unknown: macOS records no restart-pending flag "
                           "in its update plists")
        return level

    def _pending_updates(self, prefs: Optional[dict], last_check: Optional[datetime],
                         level: PatchLevel) -> None:
        if prefs is None:
            level.notes.append(f"pending updates unknown: {SOFTWARE_UPDATE_PLIST} not readable or absent")
            return
        recommended = prefs.get("RecommendedUpdates")
        if isinstance(recommended, list):
            level.pending_updates = [describe_update(i) for i in recommended if isinstance(i, dict)]
        elif "LastRecommendedUpdatesAvailable" not in prefs:
            level.notes.append("pending updates unknown: Software Update has recorded no scan")
            return
        if last_check is None:
            level.notes.append("pending update list undated: no LastFullSuccessfulDate")
            return
        age = (self.now - last_check).days
        level.notes.append(f"last successful Software Update check {last_check:%Y-%m-%d} "
                           f"({age} days before {self.now:%Y-%m-%d})")
        if age > STALE_CHECK_DAYS:
            level.notes.append(f"pending update list may be stale: older than {STALE_CHECK_DAYS} days")

    def _newest_apple_install(self, notes: list[str]) -> tuple[Optional[datetime], str]:
        newest: Optional[datetime] = None
        label = ""
        for entry in self._install_history(notes):
            if entry.get("processName") not in UPDATE_PROCESSES or entry.get("contentType") == "config-data":
                continue
            when = as_utc(entry.get("date"))
            if when is not None and (newest is None or when > newest):
                newest = when
                label = name_with_version(str(entry.get("displayName", "")),
                                          str(entry.get("displayVersion", "")))
        return newest, (f"newest Apple update installed: {label} on {newest:%Y-%m-%d}" if newest else "")

    def _install_history(self, notes: list[str]) -> Iterator[dict[str, Any]]:
        """InstallHistory.plist entries: streamed when XML, loaded (capped) when binary."""
        file = self.path(INSTALL_HISTORY_PLIST)
        try:
            size = file.stat().st_size
            with open_fact(file) as fh:
                binary = fh.read(8).startswith(b"bplist")
                fh.seek(0)
                if binary:
                    if size > INSTALL_HISTORY_MAX_BYTES:
                        notes.append(f"{INSTALL_HISTORY_PLIST}: binary and larger than "
                                     f"{INSTALL_HISTORY_MAX_BYTES // (1024 * 1024)} MB, not read")
                        return
                    data = plistlib.load(fh)
                    yield from (e for e in (data if isinstance(data, list) else []) if isinstance(e, dict))
                    return
                if size > INSTALL_HISTORY_STREAM_MAX_BYTES:
                    notes.append(f"{INSTALL_HISTORY_PLIST}: larger than "
                                 f"{INSTALL_HISTORY_STREAM_MAX_BYTES // (1024 * 1024)} MB, not read")
                    return
                yield from iter_xml_plist_entries(fh)
        except FileNotFoundError:
            notes.append(f"{INSTALL_HISTORY_PLIST} not found")
        except OSError as exc:
            notes.append(f"{INSTALL_HISTORY_PLIST}: cannot read ({exc.strerror or exc})")
        except Exception as exc:  # expat / plistlib errors on a damaged file
            notes.append(f"{INSTALL_HISTORY_PLIST}: not a valid plist ({exc})")

    # ------------------------------------------------------------------ agent
    def agent_info(self) -> AgentInfo:
        notes: list[str] = []
        installed = self.path(AGENT_CONF).is_file() or self.path(AGENT_BINARY).is_file()
        version_text = self.read_text(AGENT_VERSION_FILE, limit=4096) or ""
        info = AgentInfo(installed=installed, version=(version_text.strip().splitlines() or [""])[0],
                         service_name=AGENT_SERVICE, notes=notes, live=self.live)
        if installed and not info.version:
            notes.append(f"{AGENT_VERSION_FILE} missing or empty: agent version unknown")
        plist_path = f"{LAUNCH_DAEMONS}/{AGENT_SERVICE}.plist"
        job = self._plist_dict(plist_path, notes)
        info.service_enabled = self._service_enabled(job, notes)
        if self.live:
            self._launchd_state(info, job is not None)
        elif job is not None:
            notes.append("launchd state unknown: the root is not the live system")
        else:
            info.service_state = "absent"
            if installed:
                notes.append(f"{plist_path} missing: launchd cannot start the agent")
        info.processes = processes_named(self.processes, [AGENT_PROCESS])
        if info.service_state == "running" and not info.processes and self.live:
            notes.append(f"launchd reports the service running but no {AGENT_PROCESS} process was listed")
        return info

    def _service_enabled(self, job: Optional[dict], notes: list[str]) -> Optional[bool]:
        """launchd's override database first, then the job plist's ``Disabled`` key."""
        overrides = self._plist_dict(LAUNCHD_DISABLED_PLIST, notes) or {}
        if isinstance(overrides.get(AGENT_SERVICE), bool):
            return not overrides[AGENT_SERVICE]
        if job is not None:
            return not bool(job.get("Disabled", False))
        return None

    def _launchd_state(self, info: AgentInfo, job_present: bool) -> None:
        result = self.runner(("launchctl", "print", f"system/{AGENT_SERVICE}"), timeout=15)
        if result.ok:
            facts = parse_launchctl_print(result.text())
            state = facts.get("state", "")
            info.service_state = "running" if state == "running" else ("stopped" if state else "unknown")
            if info.service_enabled is None:
                info.service_enabled = True      # launchd will not load a disabled job
            if state and state != "running":
                exit_code = facts.get("last exit code", "unknown")
                info.notes.append(f"launchd state: {state}; last exit code = {exit_code}")
        elif launchctl_service_missing(result):
            info.service_state = "stopped" if job_present else "absent"
            info.notes.append(f"{AGENT_SERVICE} is not loaded in launchd's system domain")
        else:
            why = result.error or f"exit {result.returncode}: {result.stderr.decode(errors='replace').strip()}"
            info.notes.append(f"launchctl print failed ({why}): service state unknown")

    # ------------------------------------------------------------------ sources
    def sources(self) -> list:
        """Everything agent-footprint.md lists for macOS, declared for ``gather``.

        ``/var/log/jc*`` overlaps the named agent logs on purpose: the named ones are
        recorded as absent when missing, the glob catches names not known yet.
        ``gather`` copies a file matched by several sources once.
        """
        return (self._agent_log_sources() + self._agent_config_sources()
                + self._system_sources() + self._user_sources() + self._command_sources())

    @staticmethod
    def _agent_log_sources() -> list[FileSource]:
        return agent_log_sources(
            FileSource("/var/log/jumpcloud-loginwindow", "logs/agent/jumpcloud-loginwindow", "agent-logs", recursive=True))

    @staticmethod
    def _agent_config_sources() -> list[FileSource]:
        return agent_config_sources(
            config_source("/Library/Preferences/com.jumpcloud.Nudge.json"),
            config_source(f"{LAUNCH_DAEMONS}/com.jumpcloud.*.plist"),
            config_source(f"{LAUNCH_AGENTS}/com.jumpcloud.*.plist"))

    @staticmethod
    def _system_sources() -> list[FileSource]:
        system = "logs/system"
        return [
            FileSource("/var/log/install.log", system, "system-logs", kind="system"),
            FileSource(SOFTWARE_UPDATE_PLIST, system, "system-logs", kind="system", timestamped=False),
        ]

    def _user_sources(self) -> list[FileSource]:
        found: list[FileSource] = []
        for home in self.user_homes():
            def user(rel: str, sub: str = "", recursive: bool = False) -> FileSource:
                return FileSource(f"{home}/{rel}", "logs/users/{user}" + (f"/{sub}" if sub else ""), "user-logs",
                                  recursive=recursive, user=self._user_label(home), within=home)

            pwm_support = "Library/Application Support/JumpCloud Password Manager"
            found += [
                user("Library/Logs/JumpCloud/jc-user-agent.log"),
                user("Library/Logs/JumpCloud/jc-user-agent.log.*"),   # .1 and .prev
                user("Library/Logs/JumpCloud Password Manager", "password-manager", True),
                user(f"{pwm_support}/logs", "password-manager", True),
                user(f"{pwm_support}/data/daemon/log", "password-manager-daemon", True),
                user("Library/Logs/JumpCloud-Remote-Assist", "remote-assist", True),
            ]
        return found

    @staticmethod
    def _command_sources() -> list[CommandSource]:
        def cmd(dest: str, *argv: str, timeout: float = 30.0) -> CommandSource:
            return CommandSource(tuple(argv), dest, "commands", timeout=timeout)

        daemons = [cmd(f"launchctl-print-{label.removeprefix('com.jumpcloud.')}.txt",
                       "launchctl", "print", f"system/{label}", timeout=15) for label in AGENT_DAEMONS]
        return [
            cmd("sw_vers.txt", "sw_vers", timeout=15),
            *daemons,
            cmd("softwareupdate-history.txt", "softwareupdate", "--history", timeout=60),
            cmd("system_profiler-SPSoftwareDataType.txt", "system_profiler", "SPSoftwareDataType",
                timeout=60),
            cmd("df-h.txt", "df", "-h"),
            cmd("ifconfig.txt", "ifconfig", timeout=15),
            cmd("ps-aux.txt", "ps", "aux"),
            cmd("log-show-jumpcloud-1h.txt", "log", "show", "--last", "1h", "--predicate",
                'process CONTAINS[c] "jumpcloud"', "--style", "compact", timeout=120),
        ]

    # ------------------------------------------------------------------ never
    def never_collect(self) -> list[str]:
        """Agent identity files (default and as jcagent.conf names them), the
        SecureToken credential drop and each user's device-trust keychain."""
        paths = [f"{AGENT_DIR}/{name}" for name in AGENT_IDENTITY_FILES]
        paths += self._conf_identity_paths()
        paths.append(SECURE_TOKEN_CREDS)
        paths += [f"{home}/{DEVICE_TRUST_KEYCHAIN}" for home in self.user_homes()]
        # /var, /etc and /tmp are symlinks into /private on macOS: name both spellings.
        twins = [f"/private{p}" for p in paths if p.startswith(("/var/", "/etc/", "/tmp/"))]
        return list(dict.fromkeys(paths + twins))

    def _conf_identity_paths(self) -> list[str]:
        text = self.read_text(AGENT_CONF, limit=CONF_MAX_BYTES)
        if not text:
            return []
        try:
            conf = json.loads(text)
        except ValueError:
            return []
        found = []
        for key in AGENT_CONF_IDENTITY_KEYS:
            value = conf.get(key) if isinstance(conf, dict) else None
            if isinstance(value, str) and value.strip():
                value = value.strip()
                found.append(value if value.startswith("/") else f"{AGENT_DIR}/{value}")
        return found
