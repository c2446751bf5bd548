"""Windows platform: OS facts, patch level, agent status and sources, from registry trees
read both through DictRegistryReader and as real hive files (tests/hivewriter.py) under a
fixture volume, and from recorded ``sc`` / Get-HotFix outputs replayed by ReplayRunner."""
from __future__ import annotations

from collector.destname import destination

import platform
import shutil
import socket
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collector.sources import CommandSource, FileSource
from platforms import get_platform
from platforms import winregistry as wr
from platforms.base import OfflineRunner, ProcessInfo
from platforms.windows import (GET_HOTFIX, SC_QC, SC_QUERY, Windows, parse_hotfix_json,
                               parse_sc_qc, parse_sc_query)
from platforms.winregistry import DictRegistryReader, HiveRegistryReader
from tests.hivewriter import Typed, plain, write_volume_hives
from tests.replay import ReplayRunner

FIXTURES = Path(__file__).parent / "fixtures" / "windows"
VOLUME = FIXTURES / "root"
COMMANDS = FIXTURES / "commands"

# --------------------------------------------------------------------------- registry trees

WIN10_22H2_PRO = {
    "ProductName": "Windows 10 Pro", "EditionID": "Professional", "InstallationType": "Client",
    "CurrentBuild": "19045", "CurrentBuildNumber": "19045", "UBR": 3693, "DisplayVersion": "22H2",
    "ReleaseId": "2009", "CurrentMajorVersionNumber": 10, "CurrentMinorVersionNumber": 0,
    "CurrentVersion": "6.3", "BuildLab": "19041.vb_release.191206-1406",
    "BuildLabEx": "19041.1.amd64fre.vb_release.191206-1406", "CompositionEditionID": "Enterprise",
    "SystemRoot": r"C:\WINDOWS", "InstallDate": 1652361834, "RegisteredOwner": "JumpCloud",
}
WIN11_23H2_PRO = {
    **WIN10_22H2_PRO, "ProductName": "Windows 10 Pro", "CurrentBuild": "22631",
    "CurrentBuildNumber": "22631", "UBR": 2861, "DisplayVersion": "23H2",
    "BuildLab": "22631.ni_release.220506-1250", "BuildLabEx": "22621.1.amd64fre.ni_release.220506-1250",
}
WIN11_ENTERPRISE = {
    **WIN11_23H2_PRO, "ProductName": "Windows 10 Enterprise", "EditionID": "Enterprise", "UBR": 3296,
}
SERVER_2022_DATACENTER = {
    "ProductName": "Windows Server 2022 Datacenter", "EditionID": "ServerDatacenter",
    "InstallationType": "Server", "CurrentBuild": "20348", "CurrentBuildNumber": "20348",
    "UBR": 2113, "DisplayVersion": "21H2", "ReleaseId": "2009", "CurrentMajorVersionNumber": 10,
    "CurrentMinorVersionNumber": 0, "CurrentVersion": "6.3",
    "BuildLab": "20348.fe_release.210507-1500", "CompositionEditionID": "ServerDatacenter",
}

OS_CASES = {
    "win10-22h2-pro": (WIN10_22H2_PRO, dict(
        name="Windows 10 Pro", id="windows", version="22H2", version_id="10.0.19045", build="19045",
        kernel="10.0.19045.3693", edition="Professional", installation_type="Client")),
    "win11-23h2-pro": (WIN11_23H2_PRO, dict(
        name="Windows 11 Pro", id="windows", version="23H2", version_id="10.0.22631", build="22631",
        kernel="10.0.22631.2861", edition="Professional", installation_type="Client")),
    "win11-enterprise": (WIN11_ENTERPRISE, dict(
        name="Windows 11 Enterprise", id="windows", version="23H2", version_id="10.0.22631",
        build="22631", kernel="10.0.22631.3296", edition="Enterprise", installation_type="Client")),
    "server-2022-datacenter": (SERVER_2022_DATACENTER, dict(
        name="Windows Server 2022 Datacenter", id="windows-server", version="21H2",
        version_id="10.0.20348", build="20348", kernel="10.0.20348.2113", edition="ServerDatacenter",
        installation_type="Server")),
}


def filetime(when: datetime) -> tuple[int, int]:
    """(InstallTimeHigh, InstallTimeLow) of an aware datetime."""
    ticks = (when - datetime(1601, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 10
    return ticks >> 32, ticks & 0xFFFFFFFF


def cbs_package(state: int, when: datetime | None = None, **extra) -> dict:
    values = {"CurrentState": state, "Visibility": 1, **extra}
    if when:
        values["InstallTimeHigh"], values["InstallTimeLow"] = filetime(when)
    return values


UTC = timezone.utc
CBS_PACKAGES = {
    "Package_for_KB5032007~31bf3856ad364e35~amd64~~10.0.9206.1":
        cbs_package(0x70, datetime(2023, 11, 14, 19, 2, 11, tzinfo=UTC)),
    "Package_1_for_KB5032190~31bf3856ad364e35~amd64~~22621.2715.1.10":
        cbs_package(0x70, datetime(2023, 11, 15, 3, 12, 40, tzinfo=UTC)),
    "Package_2_for_KB5032190~31bf3856ad364e35~amd64~~22621.2715.1.10":
        cbs_package(0x70, datetime(2023, 11, 15, 3, 14, 5, tzinfo=UTC)),
    "Package_for_RollupFix~31bf3856ad364e35~amd64~~22621.2861.1.9": cbs_package(
        0x70, datetime(2023, 12, 13, 2, 30, 0, tzinfo=UTC),
        InstallLocation=r"\\?\C:\Windows\SoftwareDistribution\Download\1f3c\Windows11.0-KB5033375-x64.cab"),
    "Package_for_KB5031455~31bf3856ad364e35~amd64~~22621.2506.1.7":   # superseded: not installed
        cbs_package(0x50, datetime(2023, 10, 31, 1, 0, 0, tzinfo=UTC)),
    "Package_for_KB5034123~31bf3856ad364e35~amd64~~22621.3007.1.6": cbs_package(0x60),  # pending
    "Package_for_KB4999999~31bf3856ad364e35~amd64~~1.0.0.0": cbs_package(0),            # absent
    "Microsoft-Windows-Client-LanguagePack-Package~31bf3856ad364e35~amd64~en-US~10.0.22621.2715":
        cbs_package(0x70, datetime(2023, 11, 15, 3, 0, 0, tzinfo=UTC)),
}


def registry_tree(current_version: dict, *, start: int | None = 2, software: dict | None = None,
                  session_manager: dict | None = None, jumpcloud: dict | None = None) -> dict:
    """HKLM as a real machine has it: CurrentVersion, CBS packages, a SYSTEM hive whose
    Select\\Current names ControlSet002 (ControlSet001 holds stale decoys)."""
    services = {"Tcpip": {"Start": 1}}
    if start is not None:
        services["jumpcloud-agent"] = {
            "Start": start, "Type": 16, "ErrorControl": 1, "DisplayName": "JumpCloud Agent",
            "ObjectName": "LocalSystem",
            "ImagePath": Typed(wr.REG_EXPAND_SZ, '"C:\\Program Files\\JumpCloud\\jumpcloud-agent.exe"')}

    def control_set(hostname: str, arch: str, services: dict) -> dict:
        return {"Control": {"ComputerName": {"ComputerName": {"ComputerName": hostname}},
                            "Session Manager": {"Environment": {"PROCESSOR_ARCHITECTURE": arch,
                                                                "OS": "Windows_NT"},
                                                **(session_manager or {})}},
                "Services": services}

    sw = {"Microsoft": {"Windows NT": {"CurrentVersion": current_version},
                        "Windows": {"CurrentVersion": {"Component Based Servicing": {
                            "Packages": CBS_PACKAGES}}}}}
    for path, node in (software or {}).items():
        target = sw
        for part in path.split("\\"):
            target = target.setdefault(part, {})
        target.update(node)
    if jumpcloud is not None:
        sw["JumpCloud"] = jumpcloud
    return {"HKLM": {
        "SOFTWARE": sw,
        "SYSTEM": {"Select": {"Current": 2, "Default": 2, "Failed": 0, "LastKnownGood": 1},
                   "ControlSet001": control_set("STALE-NAME", "x86", {"jumpcloud-agent": {"Start": 4}}),
                   "ControlSet002": control_set("DESKTOP-7Q4KJ2M", "AMD64", services)}}}


@pytest.fixture
def volume(tmp_path) -> Path:
    """A copy of the fixture Windows volume, to which tests add hive files."""
    root = tmp_path / "C"
    shutil.copytree(VOLUME, root, symlinks=True)
    return root


@pytest.fixture(params=["dict", "hive"])
def make(request, volume):
    """Builds a Windows platform over ``volume`` whose registry is ``tree``, read through
    DictRegistryReader or from hive files written into the volume."""
    def build(tree: dict, **kwargs) -> Windows:
        if request.param == "dict":
            kwargs.setdefault("registry", DictRegistryReader(plain(tree)))
        else:
            write_volume_hives(volume, tree)
        windows = Windows(volume, **kwargs)
        assert isinstance(windows.registry, DictRegistryReader if request.param == "dict"
                          else HiveRegistryReader)
        return windows
    return build


def replay(scenario: str) -> ReplayRunner:
    return ReplayRunner.from_dir(COMMANDS / scenario)


# --------------------------------------------------------------------------- OS facts


@pytest.mark.parametrize("case", OS_CASES)
def test_os_info(make, case):
    current_version, expected = OS_CASES[case]
    info = make(registry_tree(current_version)).os_info()
    assert info.family == "windows"
    for field_name, value in expected.items():
        assert getattr(info, field_name) == value, field_name
    assert info.arch == "AMD64"                    # from ControlSet002, not the stale 001
    assert info.hostname == "DESKTOP-7Q4KJ2M"
    assert "CurrentVersion" in info.source


@pytest.mark.parametrize("fields, name, os_id", [
    ({"ProductName": "Windows Server 2025 Datacenter", "InstallationType": "Server",
      "EditionID": "ServerDatacenter", "CurrentBuild": "26100"}, "Windows Server 2025 Datacenter",
     "windows-server"),
    ({"ProductName": "Windows Server 2022 Standard", "InstallationType": "Server Core",
      "EditionID": "ServerStandard", "CurrentBuild": "20348"}, "Windows Server 2022 Standard",
     "windows-server"),
    ({"ProductName": "Windows 10 Pro", "CurrentBuild": "22000"}, "Windows 11 Pro", "windows"),
    ({"ProductName": "Windows 10 Pro", "CurrentBuild": "21999"}, "Windows 10 Pro", "windows"),
])
def test_windows_11_rename_only_for_clients(fields, name, os_id):
    registry = DictRegistryReader({"HKLM": {"SOFTWARE": {"Microsoft": {"Windows NT": {
        "CurrentVersion": fields}}}}})
    info = Windows("/nonexistent-volume", registry=registry).os_info()
    assert (info.name, info.id) == (name, os_id)


def test_os_info_of_windows_8_1_uses_current_version():
    registry = DictRegistryReader({"HKLM": {"SOFTWARE": {"Microsoft": {"Windows NT": {"CurrentVersion": {
        "ProductName": "Windows 8.1 Pro", "CurrentVersion": "6.3", "CurrentBuildNumber": "9600",
        "EditionID": "Professional", "InstallationType": "Client"}}}}}})
    info = Windows("/nonexistent-volume", registry=registry).os_info()
    assert (info.version_id, info.build, info.kernel, info.version) == ("6.3.9600", "9600", "6.3.9600", "")


def test_os_info_without_registry_is_empty_not_guessed(volume):
    info = Windows(volume).os_info()            # no hive files in the volume
    assert (info.name, info.id, info.version_id, info.build) == ("", "", "", "")
    assert "not found" in info.source


def test_live_os_info_asks_this_machine_for_host_and_arch():
    registry = DictRegistryReader(plain(registry_tree(WIN11_23H2_PRO)))
    info = Windows("/", live=True, runner=replay("absent"), processes=lambda: [],
                   registry=registry).os_info()
    assert info.hostname == socket.gethostname()
    assert info.arch == platform.machine()
    assert info.name == "Windows 11 Pro"


# --------------------------------------------------------------------------- patch level


def test_hotfixes_from_cbs_packages(make):
    level = make(registry_tree(WIN11_23H2_PRO)).patch_level()
    assert [h.id for h in level.hotfixes] == ["KB5033375", "KB5032190", "KB5032007"]
    assert [h.installed_on for h in level.hotfixes] == [date(2023, 12, 13), date(2023, 11, 15),
                                                        date(2023, 11, 14)]
    assert level.last_update == datetime(2023, 12, 13, 2, 30, tzinfo=UTC)
    assert level.ubr == 2861
    assert level.pending_updates == ["KB5034123 (install pending)"]
    assert any("Component Based Servicing" in note for note in level.notes)
    assert level.pending_reboot is False


def test_hotfixes_from_get_hotfix_ps51(make):
    level = make(registry_tree(WIN11_23H2_PRO), runner=replay("running-auto")).patch_level()
    assert [(h.id, h.description, h.installed_on) for h in level.hotfixes] == [
        ("KB5032007", "Update", date(2023, 11, 14)),
        ("KB5027397", "Update", date(2023, 10, 31)),
        ("KB5032190", "Security Update", date(2023, 11, 15)),
        ("KB5012170", "Security Update", None),
    ]
    # local midnight of 2023-11-15 on the recording (US Pacific) machine
    assert level.last_update == datetime(2023, 11, 15, 8, 0, tzinfo=UTC)
    assert "hotfixes from Get-HotFix" in level.notes


def test_hotfixes_from_get_hotfix_ps7(make):
    level = make(registry_tree(WIN11_23H2_PRO), runner=replay("stopped-disabled")).patch_level()
    assert [(h.id, h.installed_on) for h in level.hotfixes] == [
        ("KB5034439", date(2024, 1, 9)), ("KB5020874", date(2023, 6, 13))]
    assert level.last_update == datetime(2024, 1, 9, tzinfo=UTC)


def test_hotfixes_from_single_get_hotfix_object(make):
    level = make(registry_tree(WIN11_23H2_PRO), runner=replay("absent")).patch_level()
    assert [h.id for h in level.hotfixes] == ["KB5032190"]
    assert level.last_update == datetime(2023, 11, 14, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("scenario", ["starting-demand", "running-delayed"])
def test_get_hotfix_failure_falls_back_to_the_registry(make, scenario):
    runner = replay(scenario)
    level = make(registry_tree(WIN11_23H2_PRO), runner=runner).patch_level()
    assert GET_HOTFIX in runner.calls
    assert [h.id for h in level.hotfixes] == ["KB5033375", "KB5032190", "KB5032007"]
    assert any(note.startswith("Get-HotFix failed") for note in level.notes)


def test_bare_ms_dates_are_read_in_the_machines_zone():
    text = (COMMANDS / "absent" / "get-hotfix.json").read_text()
    [los_angeles] = parse_hotfix_json(text, tz=ZoneInfo("America/Los_Angeles"))
    assert los_angeles.hotfix.installed_on == date(2023, 11, 14)
    [honolulu] = parse_hotfix_json(text, tz=ZoneInfo("Pacific/Honolulu"))
    assert honolulu.hotfix.installed_on == date(2023, 11, 13)
    assert los_angeles.when == honolulu.when == datetime(2023, 11, 14, 8, tzinfo=UTC)


def test_hotfix_json_oddities():
    assert parse_hotfix_json("") == []
    assert parse_hotfix_json("not json") == []
    assert parse_hotfix_json('"text"') == []
    [item] = parse_hotfix_json('\ufeff[{"HotFixID": "KB1", "InstalledOn": {"value": null}},'
                               ' {"HotFixID": ""}]')
    assert (item.hotfix.id, item.hotfix.installed_on, item.when) == ("KB1", None, None)
    [iso] = parse_hotfix_json('{"HotFixID": "KB2", "InstalledOn": "2024-02-13T00:00:00.0000000+01:00"}')
    assert iso.hotfix.installed_on == date(2024, 2, 13)


def test_future_install_dates_are_ignored(make):
    now = datetime(2023, 11, 20, tzinfo=UTC)
    level = make(registry_tree(WIN11_23H2_PRO), now=now).patch_level()
    assert level.hotfixes[0].id == "KB5033375" and level.hotfixes[0].installed_on is None
    assert level.last_update == datetime(2023, 11, 15, 3, 14, 5, tzinfo=UTC)
    assert any("in the future" in note for note in level.notes)


def test_naive_now_is_local_time(make):
    level = make(registry_tree(WIN11_23H2_PRO), now=datetime(2023, 11, 20, 12, 0)).patch_level()
    assert level.hotfixes[0].installed_on is None          # 2023-12-13 is after "now"


PENDING_CASES = {
    "cbs": dict(software={r"Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending":
                          {"{4FA2B1C3-0000-4000-8000-000000000001}": {}}}),
    "windows-update": dict(software={
        r"Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired":
            {"{5FB3C2D4-0000-4000-8000-000000000002}": 1}}),
    "file-renames": dict(session_manager={"PendingFileRenameOperations": [
        r"\??\C:\Windows\Temp\jc_update.tmp", "", r"\??\C:\Program Files\JumpCloud\jumpcloud-agent.exe"]}),
}


@pytest.mark.parametrize("case", PENDING_CASES)
def test_each_pending_reboot_signal(make, case):
    level = make(registry_tree(WIN10_22H2_PRO, **PENDING_CASES[case])).patch_level()
    assert level.pending_reboot is True
    assert len([n for n in level.notes if n.startswith("reboot pending")]) == 1


def test_empty_file_rename_list_is_not_a_pending_reboot(make):
    tree = registry_tree(WIN10_22H2_PRO, session_manager={"PendingFileRenameOperations": []})
    assert make(tree).patch_level().pending_reboot is False


def test_pending_reboot_unknown_without_registry(volume):
    level = Windows(volume).patch_level()
    assert level.pending_reboot is None and level.hotfixes == [] and level.last_update is None


def test_offline_never_runs_commands(make):
    runner = ReplayRunner({})
    runner.live = False
    windows = make(registry_tree(WIN11_23H2_PRO), runner=runner)
    windows.os_info(), windows.patch_level(), windows.agent_info()
    assert runner.calls == []


# --------------------------------------------------------------------------- agent


@pytest.mark.parametrize("scenario, state, enabled, note", [
    ("running-auto", "running", True, None),
    ("stopped-disabled", "stopped", False, None),
    ("absent", "absent", None, None),
    ("starting-demand", "unknown", False, "START_PENDING"),
    ("running-delayed", "running", True, "delayed"),
])
def test_service_state_from_sc(make, scenario, state, enabled, note):
    runner = replay(scenario)
    agent = make(registry_tree(WIN11_23H2_PRO, start=4), runner=runner).agent_info()
    assert (agent.service_name, agent.service_state, agent.service_enabled) == (
        "jumpcloud-agent", state, enabled)
    assert SC_QUERY in runner.calls
    assert (SC_QC in runner.calls) == (state != "absent")
    if note:
        assert any(note in n for n in agent.notes)


@pytest.mark.parametrize("start, enabled", [(2, True), (3, False), (4, False)])
def test_service_start_type_offline(make, start, enabled):
    agent = make(registry_tree(WIN11_23H2_PRO, start=start)).agent_info()
    assert (agent.service_state, agent.service_enabled) == ("unknown", enabled)
    assert agent.running is None


def test_service_missing_from_the_system_hive_is_absent(make):
    agent = make(registry_tree(WIN11_23H2_PRO, start=None)).agent_info()
    assert (agent.service_state, agent.service_enabled) == ("absent", None)


def test_agent_files_version_and_ad_agents(make):
    agent = make(registry_tree(WIN11_23H2_PRO)).agent_info()
    assert agent.installed is True
    assert agent.version == "1.145.0"
    assert any(n.startswith("AD Sync agent present") and "AD Integration\\JumpCloud AD Sync" in n
               for n in agent.notes)
    assert any(n.startswith("AD Import agent present") for n in agent.notes)
    assert any("legacy AD Bridge" in n for n in agent.notes)


def test_agent_found_by_registry_only(tmp_path):
    registry = DictRegistryReader({"HKLM": {"SOFTWARE": {"JumpCloud": {
        "JumpCloud Agent": {"ConfigFile": r"D:\JumpCloud\jcagent.conf"},
        "AD Integration Sync Agent": {}}}}})
    agent = Windows(tmp_path, registry=registry).agent_info()
    assert agent.installed is True and agent.version == ""
    assert r"registry names the agent config D:\JumpCloud\jcagent.conf" in agent.notes
    assert any(n.startswith(r"AD Sync agent present: HKLM\SOFTWARE\JumpCloud\AD Integration Sync Agent")
               for n in agent.notes)


def test_agent_not_installed(tmp_path):
    agent = Windows(tmp_path).agent_info()
    assert (agent.installed, agent.version, agent.service_state, agent.notes) == (
        False, "", "unknown", ["process and service state unknown: the root is not the live system"])
    assert agent.running is False and agent.to_dict()["processes"] is None


def test_agent_processes(make):
    listed = [ProcessInfo(412, "jumpcloud-agent.exe"), ProcessInfo(5120, "JumpCloudTray.exe"),
              ProcessInfo(77, "notepad.exe"), ProcessInfo(78, "jumpcloud-agent-updater.exe")]
    agent = make(registry_tree(WIN11_23H2_PRO), processes=lambda: listed).agent_info()
    assert [p.pid for p in agent.processes] == [412, 5120]
    assert agent.running is True and agent.pid == 412


def test_version_txt_in_utf16(tmp_path):
    contrib = tmp_path / "Program Files" / "JumpCloud" / "Plugins" / "Contrib"
    contrib.mkdir(parents=True)
    (contrib / "version.txt").write_bytes("1.150.2\r\n".encode("utf-16"))
    assert Windows(tmp_path).agent_info().version == "1.150.2"


# --------------------------------------------------------------------------- sc parsing


def test_sc_parsers_on_recordings():
    def read(scenario: str, name: str) -> str:
        return (COMMANDS / scenario / name).read_bytes().decode("ascii")
    assert parse_sc_query(read("running-auto", "sc-query.txt")).state == "running"
    assert parse_sc_query(read("stopped-disabled", "sc-query.txt")).raw_state == "STOPPED"
    assert parse_sc_query(read("absent", "sc-query.txt"), 1060).state == "absent"
    assert parse_sc_query(read("absent", "sc-query.txt"), None).state == "absent"   # by the text
    assert parse_sc_query("").state == "unknown"
    assert parse_sc_qc(read("running-delayed", "sc-qc.txt")) == ("AUTO_START", True)
    assert parse_sc_qc(read("starting-demand", "sc-qc.txt")) == ("DEMAND_START", False)
    assert parse_sc_qc(read("absent", "sc-qc.txt")) == ("", False)
    # labels are translated on some Windows languages; the state words are not
    assert parse_sc_query("        ZUSTAND            : 4  RUNNING \r\n").state == "running"


# --------------------------------------------------------------------------- homes and paths


def test_user_homes_skip_system_profiles():
    assert Windows(VOLUME).user_homes() == [r"C:\Users\alice", r"C:\Users\bob.smith"]
    assert Windows("/nonexistent-volume").user_homes() == []


def test_paths_map_onto_the_root():
    windows = Windows(VOLUME)
    assert windows.path(r"C:\Program Files\JumpCloud\Plugins\Contrib\jcagent.conf") == \
        VOLUME / "Program Files" / "JumpCloud" / "Plugins" / "Contrib" / "jcagent.conf"


def test_defaults_offline_and_live(tmp_path, monkeypatch):
    offline = Windows(tmp_path)
    assert not offline.live and isinstance(offline.runner, OfflineRunner)
    assert isinstance(offline.registry, HiveRegistryReader)
    assert isinstance(get_platform("windows", root=tmp_path), Windows)
    from platforms import windows as windows_module
    monkeypatch.setattr(windows_module.sys, "platform", "win32")
    live = Windows(tmp_path, live=True, runner=OfflineRunner(), processes=lambda: [])
    assert isinstance(live.registry, wr.WinRegReader)


# --------------------------------------------------------------------------- sources

REQUIRED_PATHS = {
    r"C:\Windows\Temp\jcagent.log", r"C:\Windows\Temp\jcagent.log.*", r"C:\Windows\Temp\jcagent_updater.log",
    r"C:\Windows\Temp\jcUpdate.log", r"C:\Windows\Temp\jcUpgradeScript.log",
    r"C:\Windows\Temp\jcExecUpgradeScript.log", r"C:\Windows\Temp\jcUninstallUpgrade.log",
    r"C:\Windows\Temp\jc_raasvc.log", r"C:\Windows\Temp\jcAdmu.log",
    r"C:\Windows\Temp\jcagentforceuninstall.log",
    r"C:\Program Files\JumpCloud\Plugins\Contrib\jcagent.conf",
    r"C:\Program Files\JumpCloud\Plugins\Contrib\lockoutCache.json",
    r"C:\Program Files\JumpCloud\Plugins\Contrib\managedUsers.json",
    r"C:\Program Files\JumpCloud\Plugins\Contrib\version.txt",
    r"C:\Program Files\JumpCloud\policyConf.json",
    r"C:\Windows\Logs\JCCredentialProvider\provider.log",
    r"C:\ProgramData\JumpCloud\CredentialProvider\*.log",
    r"C:\ProgramData\JumpCloud\CredentialProvider\*.json",
    r"C:\ProgramData\JumpCloud\DependencyLoader\loader.log", r"C:\ProgramData\JumpCloud\Tray",
    r"C:\Windows\System32\drivers\etc\jcagent-proxy.conf",
    r"C:\Windows\Temp\JumpCloud_AD_Integration.log",
    r"C:\Program Files\JumpCloud\AD Integration Import Agent\JumpCloud_AD_Import_Grpc*.log",
    r"C:\Program Files\JumpCloud\AD Integration\JumpCloud AD Import\JumpCloud_AD_Import_Grpc*.log",
    r"C:\Program Files\JumpCloud\AD Integration Import Agent\jcadimportagent.config",
    r"C:\Program Files\JumpCloud\AD Integration Import Agent\jcadimportagent.config.json",
    r"C:\Program Files\JumpCloud\AD Sync\adsync.log",
    r"C:\Program Files\JumpCloud\JumpCloud AD Sync\JumpCloud_AD_Sync.log",
    r"C:\Program Files\JumpCloud\AD Sync\config.json",
    r"C:\Program Files\JumpCloud\JumpCloud AD Sync\config.json",
    r"C:\Program Files\JumpCloud AD Bridge\adint.config.json",
}
DESTS = ("logs/agent", "config/agent", "logs/adsync", "logs/adimport", "config/adsync",
         "config/adimport", "logs/system", "logs/users/")
COLLECTORS = {"agent-logs", "agent-config", "ad-sync", "ad-import", "system-logs", "user-logs", "commands"}


def file_sources(windows: Windows) -> list[FileSource]:
    return [s for s in windows.sources() if isinstance(s, FileSource)]


def test_sources_declare_every_footprint_file():
    sources = file_sources(Windows(VOLUME))
    assert REQUIRED_PATHS <= {s.path for s in sources}
    for source in sources:
        assert source.collector in COLLECTORS
        assert source.dest.startswith(DESTS), source
    by_path = {s.path: s for s in sources}
    for secret in (r"C:\Program Files\JumpCloud\Plugins\Contrib\jcagent.conf",
                   r"C:\Program Files\JumpCloud AD Bridge\adint.config.json",
                   r"C:\Program Files\JumpCloud\AD Sync\config.json",
                   r"C:\Program Files\JumpCloud\AD Integration Import Agent\jcadimportagent.config"):
        assert by_path[secret].redact == "json" and by_path[secret].kind == "config", secret
    assert by_path[r"C:\ProgramData\JumpCloud\Tray"].recursive
    names = [(destination(s.dest, s.user), s.path.rsplit("\\", 1)[1].lower()) for s in sources]
    assert len(names) == len(set(names)), "two sources would land on the same bundle name"


def test_per_user_sources():
    user_sources = [s for s in file_sources(Windows(VOLUME)) if s.collector == "user-logs"]
    assert {destination(s.dest, s.user).split("/")[2] for s in user_sources} == {"alice", "bob.smith"}
    assert r"C:\Users\alice\AppData\Local\Temp\jc-user-agent.log" in {s.path for s in user_sources}


def test_command_sources_have_deadlines():
    commands = [s for s in Windows(VOLUME).sources() if isinstance(s, CommandSource)]
    argvs = {s.argv for s in commands}
    assert {SC_QUERY, SC_QC, GET_HOTFIX, ("systeminfo",), ("ipconfig", "/all"), ("tasklist", "/v")} <= argvs
    assert any(a[0] == "wevtutil" and "/c:500" in a for a in argvs)
    assert all(0 < s.timeout <= 120 and s.collector == "commands" for s in commands)
    assert len({s.dest for s in commands}) == len(commands)


def matched_files(windows: Windows, source: FileSource) -> set[str]:
    """What a gatherer would find for ``source`` under the volume (relative paths)."""
    target = windows.path(source.path)
    if source.recursive:
        found = [p for p in target.rglob("*") if p.is_file()] if target.is_dir() else []
    else:
        found = [p for p in target.parent.glob(target.name) if p.is_file()]
    return {p.relative_to(windows.root).as_posix() for p in found}


def test_sources_find_the_volume_files_and_never_the_identity_files():
    windows = Windows(VOLUME)
    collected = set().union(*(matched_files(windows, s) for s in file_sources(windows)))
    on_volume = {p.relative_to(VOLUME).as_posix() for p in VOLUME.rglob("*")
                 if p.is_file() and not p.is_symlink() and "Users/All Users" not in p.as_posix()}
    not_ours = {"Windows/Temp/unrelated.log", "Users/Public/desktop.ini",
                "Users/Default/NTUSER.DAT.placeholder"}
    identity = {"Program Files/JumpCloud/Plugins/Contrib/client.key",
                "Program Files/JumpCloud/Plugins/Contrib/client.crt",
                "Program Files/JumpCloud/Plugins/Contrib/ca.crt",
                "Program Files/JumpCloud/jumpcloud-agent.exe",
                "ProgramData/JumpCloud/Identity/client.key"}
    assert collected == on_volume - not_ours - identity
    never = {p.lower() for p in windows.never_collect()}
    for relative in collected:
        assert "c:\\" + relative.replace("/", "\\").lower() not in never, relative


def test_never_collect_follows_jcagent_conf():
    never = Windows(VOLUME).never_collect()
    for path in (r"C:\Program Files\JumpCloud\Plugins\Contrib\client.key",
                 r"C:\Program Files\JumpCloud\Plugins\Contrib\client.crt",
                 r"C:\Program Files\JumpCloud\Plugins\Contrib\ca.crt",
                 r"C:\ProgramData\JumpCloud\Identity\client.key"):
        assert path in never
    assert len(never) == len(set(never))


@pytest.mark.parametrize("conf", [b"", b"{not json", b'["a"]', b'{"clientKey": 5, "caCrt": "ca2.crt"}'])
def test_never_collect_with_odd_confs(tmp_path, conf):
    contrib = tmp_path / "Program Files" / "JumpCloud" / "Plugins" / "Contrib"
    contrib.mkdir(parents=True)
    (contrib / "jcagent.conf").write_bytes(conf)
    never = Windows(tmp_path).never_collect()
    assert r"C:\Program Files\JumpCloud\Plugins\Contrib\client.key" in never
    if b"ca2.crt" in conf:
        assert r"C:\Program Files\JumpCloud\Plugins\Contrib\ca2.crt" in never
