"""platforms.macos against recorded macOS file trees and command outputs.

Fixture roots under tests/fixtures/macos/<release>/ are laid out as the real
filesystem; tests/fixtures/macos/commands/<scenario>/ hold real-format outputs of
sw_vers, uname, scutil and launchctl print, replayed by ReplayRunner.
"""
from __future__ import annotations

from collector.destname import destination

import fnmatch
import io
import json
import plistlib
import shutil
import socket
from datetime import datetime, timezone
from pathlib import Path

import pytest

from collector.sources import CommandSource, FileSource
from platforms import get_platform
from platforms import macos as macos_module
from platforms.base import CommandResult, ProcessInfo
from platforms.macos import (
    MacOS, describe_update, iter_xml_plist_entries, marketing_name, parse_launchctl_print,
    parse_sw_vers,
)
from tests.replay import ReplayRunner

FIXTURES = Path(__file__).parent / "fixtures" / "macos"
COMMANDS = FIXTURES / "commands"
SONOMA = FIXTURES / "sonoma-14.4.1"
VENTURA = FIXTURES / "ventura-13.3.1-rsr"
BIGSUR = FIXTURES / "bigsur-11.7.10"
SEQUOIA = FIXTURES / "sequoia-15.1-no-agent"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def offline(root: Path, now: datetime = utc(2024, 4, 20)) -> MacOS:
    """An offline platform whose runner records any (forbidden) call."""
    runner = ReplayRunner({})
    runner.live = False
    platform = MacOS(root, runner=runner, live=False, now=now)
    platform.test_runner = runner   # type: ignore[attr-defined]
    return platform


def live(root: Path, scenario: str | None, processes=None, now: datetime = utc(2024, 4, 20)) -> MacOS:
    runner = ReplayRunner.from_dir(COMMANDS / scenario) if scenario else ReplayRunner({})
    return MacOS(root, runner=runner, processes=processes or (lambda: []), live=True, now=now)


def agent_process(pid: int = 412) -> list[ProcessInfo]:
    return [ProcessInfo(1, "launchd"), ProcessInfo(pid, "jumpcloud-agent"), ProcessInfo(900, "Finder")]


def has_note(notes: list[str], *words: str) -> bool:
    return any(all(w in note for w in words) for note in notes)


# --------------------------------------------------------------------------- parsers


@pytest.mark.parametrize("version, name", [
    ("14.4.1", "Sonoma"), ("13.3.1", "Ventura"), ("11.7.10", "Big Sur"), ("12.7.6", "Monterey"),
    ("15.1", "Sequoia"), ("26.0", "Tahoe"), ("10.15.7", "Catalina"), ("10.14.6", "Mojave"),
    ("10.16", "Big Sur"), ("10.9.5", "Mavericks"), ("27.0", ""), ("", ""), ("garbage", ""),
])
def test_marketing_name(version, name):
    assert marketing_name(version) == name


def test_parse_sw_vers_reads_both_tab_layouts_and_the_rsr_line():
    ventura = parse_sw_vers((COMMANDS / "ventura-rsr-not-loaded" / "sw_vers.txt").read_text())
    assert ventura == {"ProductName": "macOS", "ProductVersion": "13.3.1",
                       "ProductVersionExtra": "(a)", "BuildVersion": "22E772610a"}
    bigsur = parse_sw_vers((COMMANDS / "bigsur-not-running" / "sw_vers.txt").read_text())
    assert bigsur["ProductVersion"] == "11.7.10" and bigsur["BuildVersion"] == "20G1427"


def test_parse_launchctl_print_keeps_top_level_keys_only():
    running = parse_launchctl_print(
        (COMMANDS / "sonoma-running" / "launchctl-print-darwin-agent.txt").read_text())
    assert running["state"] == "running"
    assert running["pid"] == "412"
    assert running["last exit code"] == "(never exited)"
    assert running["path"] == "/Library/LaunchDaemons/com.jumpcloud.darwin-agent.plist"
    assert "ID" not in running and "PATH => /usr/bin:/bin:/usr/sbin:/sbin" not in running


def test_parse_launchctl_print_ignores_nested_blocks_listed_before_the_state():
    dump = ("system/com.example = {\n\tendpoints = {\n\t\t\"com.example.sock\" = {\n"
            "\t\t\tstate = active\n\t\t\tactive count = 9\n\t\t}\n\t}\n"
            "\tactive count = 0\n\tstate = not running\n\tlast exit code = 78: EX_CONFIG\n}\n")
    facts = parse_launchctl_print(dump)
    assert facts["state"] == "not running"
    assert facts["active count"] == "0"
    assert facts["last exit code"] == "78: EX_CONFIG"


@pytest.mark.parametrize("item, text", [
    ({"Display Name": "macOS Ventura 13.4", "Display Version": "13.4"}, "macOS Ventura 13.4"),
    ({"Display Name": "Safari", "Display Version": "16.5"}, "Safari 16.5"),
    ({"Identifier": "MSU_UPDATE_22F66_patch_13.4"}, "MSU_UPDATE_22F66_patch_13.4"),
    ({}, "unnamed update"),
])
def test_describe_update(item, text):
    assert describe_update(item) == text


# --------------------------------------------------------------------------- offline roots


def test_sonoma_offline_os_info_comes_from_files_and_runs_nothing():
    platform = offline(SONOMA)
    info = platform.os_info()
    assert (info.family, info.id, info.version, info.version_id) == ("macos", "macos", "14.4.1", "14.4.1")
    assert info.build == "23E224"
    assert info.codename == "Sonoma"
    assert info.name == "macOS 14.4.1 Sonoma"
    assert info.kernel == "" and info.arch == ""
    assert info.hostname == "Alice\u2019s MacBook Pro"
    assert info.source.endswith("SystemVersion.plist")
    platform.patch_level()
    platform.agent_info()
    assert platform.test_runner.calls == []


def test_sonoma_offline_patch_level_uses_newest_os_install_not_security_data():
    level = offline(SONOMA).patch_level()
    # XProtect data (2024-04-02) and a third-party pkg (2024-04-10) are newer but not OS updates.
    assert level.last_update == utc(2024, 3, 26, 19, 5, 33)
    assert level.pending_updates == []
    assert level.product_version_extra == ""
    assert level.pending_reboot is None
    assert has_note(level.notes, "pending reboot unknown")
    assert has_note(level.notes, "installed: macOS Sonoma 14.4.1 on 2024-03-26")
    assert has_note(level.notes, "2024-04-15", "4 days")
    assert not has_note(level.notes, "stale")


def test_ventura_rsr_offline_reads_the_cryptex_copy():
    platform = offline(VENTURA, now=utc(2023, 7, 1))
    info = platform.os_info()
    assert info.version == "13.3.1"
    assert info.build == "22E772610a"
    assert info.name == "macOS 13.3.1 (a) Ventura"
    assert "Cryptexes" in info.source
    level = platform.patch_level()
    assert level.product_version_extra == "(a)"
    assert level.pending_updates == ["macOS Ventura 13.4", "Command Line Tools for Xcode 14.3"]
    assert level.last_update == utc(2023, 4, 10, 21, 15, 9)
    assert has_note(level.notes, "stale")


def test_cryptex_of_another_release_is_ignored(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(VENTURA, root)
    base = root / "System/Library/CoreServices/SystemVersion.plist"
    data = plistlib.loads(base.read_bytes())
    data.update(ProductVersion="13.4", ProductBuildVersion="22F66")
    base.write_bytes(plistlib.dumps(data))
    platform = offline(root)
    info = platform.os_info()
    assert (info.version, info.build) == ("13.4", "22F66")
    level = platform.patch_level()
    assert level.product_version_extra == ""
    assert has_note(level.notes, "Cryptexes", "ignored")


def test_bigsur_offline_without_software_update_prefs():
    platform = offline(BIGSUR, now=utc(2023, 10, 5))
    info = platform.os_info()
    assert (info.version, info.build, info.codename) == ("11.7.10", "20G1427", "Big Sur")
    assert info.hostname == ""
    level = platform.patch_level()
    # Big Sur's GUI installs say processName "Software Update"; XProtectPayloads is data.
    assert level.last_update == utc(2023, 9, 21, 18, 3, 27)
    assert level.pending_updates == []
    assert has_note(level.notes, "pending updates unknown")


def test_sequoia_without_install_history_falls_back_to_last_check():
    platform = offline(SEQUOIA, now=utc(2024, 11, 30))
    assert platform.os_info().hostname == "ci-mac-07"
    level = platform.patch_level()
    assert level.last_update == utc(2024, 11, 25, 6, 30)
    assert has_note(level.notes, "LastFullSuccessfulDate", "last_update")
    assert has_note(level.notes, "InstallHistory.plist not found")
    assert level.pending_updates == ["macOS Sequoia 15.1.1"]


def test_empty_root_gives_unknowns_with_notes(tmp_path):
    platform = offline(tmp_path)
    info = platform.os_info()
    assert (info.name, info.version, info.build, info.codename, info.hostname) == ("", "", "", "", "")
    level = platform.patch_level()
    assert level.last_update is None and level.pending_updates == [] and level.pending_reboot is None
    assert has_note(level.notes, "OS version is unknown")
    assert has_note(level.notes, "last update unknown")
    assert has_note(level.notes, "pending updates unknown")
    agent = platform.agent_info()
    assert (agent.installed, agent.service_state, agent.service_enabled) == (False, "absent", None)
    assert agent.running is False
    assert platform.user_homes() == []
    assert platform.never_collect()  # the defaults stay, whatever the root lacks


def test_damaged_plists_are_reported_not_raised(tmp_path):
    (tmp_path / "System/Library/CoreServices").mkdir(parents=True)
    (tmp_path / "System/Library/CoreServices/SystemVersion.plist").write_text("<plist><dict><key>")
    (tmp_path / "Library/Receipts").mkdir(parents=True)
    (tmp_path / "Library/Receipts/InstallHistory.plist").write_text("<plist><array><dict><key>date")
    level = offline(tmp_path).patch_level()
    assert has_note(level.notes, "SystemVersion.plist", "not a valid plist")
    assert has_note(level.notes, "InstallHistory.plist", "not a valid plist")


# --------------------------------------------------------------------------- binary plists


def _to_binary(root: Path) -> None:
    for plist in root.rglob("*.plist"):
        plist.write_bytes(plistlib.dumps(plistlib.loads(plist.read_bytes()), fmt=plistlib.FMT_BINARY))


@pytest.mark.parametrize("fixture", [SONOMA, VENTURA, SEQUOIA])
def test_binary_plists_give_the_same_answers_as_xml(tmp_path, fixture):
    root = tmp_path / "root"
    shutil.copytree(fixture, root)
    _to_binary(root)
    assert (root / "System/Library/CoreServices/SystemVersion.plist").read_bytes().startswith(b"bplist00")
    xml_platform, binary_platform = offline(fixture), offline(root)
    assert binary_platform.os_info() == xml_platform.os_info()
    assert binary_platform.patch_level().to_dict() == xml_platform.patch_level().to_dict()
    binary_agent, xml_agent = binary_platform.agent_info(), xml_platform.agent_info()
    assert (binary_agent.service_enabled, binary_agent.service_state) == \
        (xml_agent.service_enabled, xml_agent.service_state)


def test_oversized_binary_install_history_is_skipped_with_a_note(tmp_path, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(SONOMA, root)
    _to_binary(root)
    monkeypatch.setattr(macos_module, "INSTALL_HISTORY_MAX_BYTES", 64)
    level = offline(root).patch_level()
    assert has_note(level.notes, "InstallHistory.plist", "not read")
    assert level.last_update == utc(2024, 4, 15, 8, 12, 40)   # falls back to the last check


# --------------------------------------------------------------------------- streaming


def _history_xml(count: int) -> bytes:
    entries = [{"date": datetime(2020, 1, 1 + i % 28, 12, 0, i % 60), "displayName": f"pkg {i}",
                "displayVersion": str(i), "packageIdentifiers": [f"com.example.pkg{i}"],
                "processName": "installer"} for i in range(count)]
    return plistlib.dumps(entries, fmt=plistlib.FMT_XML)


def test_streamed_entries_match_plistlib_across_odd_chunk_boundaries():
    data = _history_xml(500)
    streamed = list(iter_xml_plist_entries(io.BytesIO(data), chunk_size=97))
    loaded = plistlib.loads(data)
    assert len(streamed) == 500
    for got, want in zip(streamed, loaded):
        assert got["displayName"] == want["displayName"]
        assert got["date"] == want["date"].replace(tzinfo=timezone.utc)
        assert "packageIdentifiers" not in got   # nested arrays are skipped


def test_stream_is_lazy():
    entries = iter_xml_plist_entries(io.BytesIO(_history_xml(5000)), chunk_size=1024)
    first = next(entries)
    assert first["displayName"] == "pkg 0"


def test_entity_declarations_are_refused(tmp_path):
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE plist [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
            b'<plist version="1.0"><array><dict><key>displayName</key><string>&b;</string>'
            b'</dict></array></plist>')
    with pytest.raises(ValueError):
        list(iter_xml_plist_entries(io.BytesIO(bomb)))
    (tmp_path / "Library/Receipts").mkdir(parents=True)
    (tmp_path / "Library/Receipts/InstallHistory.plist").write_bytes(bomb)
    assert has_note(offline(tmp_path).patch_level().notes, "InstallHistory.plist", "entity")


# --------------------------------------------------------------------------- live, replayed


def test_live_sonoma_uses_commands():
    platform = live(SONOMA, "sonoma-running", processes=agent_process)
    info = platform.os_info()
    assert (info.version, info.build, info.source) == ("14.4.1", "23E224", "sw_vers")
    assert (info.kernel, info.arch) == ("23.4.0", "arm64")
    assert info.hostname == "Alice\u2019s MacBook Pro"
    agent = platform.agent_info()
    assert agent.installed is True
    assert agent.version == "3.14.1"
    assert agent.service_name == "com.jumpcloud.darwin-agent"
    assert (agent.service_state, agent.service_enabled) == ("running", True)
    assert agent.running is True and agent.pid == 412
    assert [p.name for p in agent.processes] == ["jumpcloud-agent"]
    assert ("launchctl", "print", "system/com.jumpcloud.darwin-agent") in platform.runner.calls


def test_live_running_service_without_a_listed_process_is_flagged():
    agent = live(SONOMA, "sonoma-running").agent_info()
    assert agent.service_state == "running"
    assert has_note(agent.notes, "no jumpcloud-agent process")


def test_live_ventura_rsr_and_agent_not_loaded():
    platform = live(VENTURA, "ventura-rsr-not-loaded")
    info = platform.os_info()
    assert info.name == "macOS 13.3.1 (a) Ventura"
    assert platform.patch_level().product_version_extra == "(a)"
    agent = platform.agent_info()
    assert agent.installed is True and agent.version == "3.12.0"
    assert agent.service_state == "stopped"
    assert agent.service_enabled is False          # launchd's disabled.plist says so
    assert agent.running is False
    assert has_note(agent.notes, "not loaded")


def test_live_bigsur_not_running_and_no_scutil():
    platform = live(BIGSUR, "bigsur-not-running")
    info = platform.os_info()
    assert (info.kernel, info.codename) == ("20.6.0", "Big Sur")
    assert info.hostname == socket.gethostname()    # scutil was not recorded: fallback
    agent = platform.agent_info()
    assert agent.service_state == "stopped"
    assert agent.service_enabled is False           # the plist's legacy Disabled key
    assert has_note(agent.notes, "not running", "last exit code = 1")
    assert has_note(agent.notes, "version.txt")


def test_live_without_sw_vers_falls_back_to_the_plist():
    platform = live(SONOMA, None)
    info = platform.os_info()
    assert (info.version, info.build) == ("14.4.1", "23E224")
    assert info.source.endswith("SystemVersion.plist")
    assert (info.kernel, info.arch) == ("", "")
    assert has_note(platform.patch_level().notes, "sw_vers", "command not found")


def test_live_launchctl_failure_leaves_state_unknown():
    runner = ReplayRunner({("launchctl", "print", "system/com.jumpcloud.darwin-agent"): CommandResult(
        ("launchctl",), 1, b"", b"Operation not permitted\n")})
    agent = MacOS(SONOMA, runner=runner, processes=lambda: [], live=True).agent_info()
    assert agent.service_state == "unknown"
    assert agent.running is None
    assert has_note(agent.notes, "launchctl print failed", "Operation not permitted")


def test_live_not_loaded_without_plist_is_absent():
    runner = ReplayRunner.from_dir(COMMANDS / "ventura-rsr-not-loaded")
    agent = MacOS(SEQUOIA, runner=runner, processes=lambda: [], live=True).agent_info()
    assert (agent.installed, agent.service_state, agent.version) == (False, "absent", "")


# --------------------------------------------------------------------------- agent offline


def test_offline_agent_with_plist_is_unknown_but_enabled():
    agent = offline(SONOMA).agent_info()
    assert (agent.installed, agent.version) == (True, "3.14.1")
    assert (agent.service_state, agent.service_enabled) == ("unknown", True)
    assert agent.running is None
    assert has_note(agent.notes, "not the live system")


def test_offline_disabled_by_override_database_and_by_plist_key():
    assert offline(VENTURA).agent_info().service_enabled is False
    bigsur = offline(BIGSUR).agent_info()
    assert bigsur.installed is True                 # the binary alone counts
    assert bigsur.service_enabled is False


def test_offline_installed_without_launch_daemon_is_absent(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(SONOMA, root)
    (root / "Library/LaunchDaemons/com.jumpcloud.darwin-agent.plist").unlink()
    agent = offline(root).agent_info()
    assert (agent.installed, agent.service_state, agent.service_enabled) == (True, "absent", None)
    assert has_note(agent.notes, "launchd cannot start the agent")


def test_results_serialise_to_json():
    platform = offline(VENTURA)
    json.dumps(platform.os_info().to_dict())
    json.dumps(platform.patch_level().to_dict())
    json.dumps(platform.agent_info().to_dict())


# --------------------------------------------------------------------------- users, sources, never


def test_user_homes_skip_shared_dot_folders_and_symlinks(tmp_path):
    assert offline(SONOMA).user_homes() == ["/Users/alice", "/Users/bob"]
    assert offline(BIGSUR).user_homes() == ["/Users/dave", "/var/root"]
    root = tmp_path / "root"
    shutil.copytree(SONOMA, root)
    (root / "Users/.hidden").mkdir()
    (root / "Users/mallory").symlink_to("/etc")
    assert offline(root).user_homes() == ["/Users/alice", "/Users/bob"]


def _covered(system_path: str, sources: list) -> list[FileSource]:
    """The file sources that would pick up ``system_path``."""
    hits = []
    for src in sources:
        if not isinstance(src, FileSource):
            continue
        if src.recursive and system_path.startswith(src.path.rstrip("/") + "/"):
            hits.append(src)
        elif not src.recursive and fnmatch.fnmatchcase(system_path, src.path):
            hits.append(src)
    return hits


@pytest.mark.parametrize("fixture", [SONOMA, BIGSUR])
def test_every_agent_file_in_the_fixture_is_declared(fixture):
    sources = offline(fixture).sources()
    wanted = [f for f in fixture.rglob("*") if f.is_file() and (
        "jc" in f.name or "JumpCloud" in str(f) or "jumpcloud" in str(f) or "/opt/jc/" in f"/{f.relative_to(fixture)}")]
    assert wanted
    for file in wanted:
        system_path = "/" + file.relative_to(fixture).as_posix()
        if system_path.startswith("/opt/jc/bin/"):
            continue                                 # the agent's program, not evidence
        assert _covered(system_path, sources), f"{system_path} is not collected"


def test_sources_declare_collectors_dests_and_redaction():
    sources = offline(SONOMA).sources()
    files = [s for s in sources if isinstance(s, FileSource)]
    commands = [s for s in sources if isinstance(s, CommandSource)]
    assert {s.collector for s in sources} == {"agent-logs", "agent-config", "system-logs",
                                             "user-logs", "commands"}
    by_path = {s.path: s for s in files}
    conf = by_path["/opt/jc/jcagent.conf"]
    assert (conf.kind, conf.redact, conf.dest) == ("config", "json", "config/agent")
    assert by_path["/opt/jc/agentBootstrap.json"].redact == "json"
    assert by_path["/opt/jc/policies"].recursive
    assert by_path["/var/log/jumpcloud"].recursive and by_path["/var/log/jumpcloud-loginwindow"].recursive
    assert by_path["/var/log/install.log"].kind == "system"
    assert by_path["/Library/LaunchDaemons/com.jumpcloud.*.plist"].kind == "config"
    assert by_path["/Library/LaunchAgents/com.jumpcloud.*.plist"].kind == "config"
    for path in ("/etc/jcagent-proxy.conf", "/Library/Preferences/com.jumpcloud.Nudge.json",
                 "/var/log/jcagent.log.*", "/var/log/jcUpdate.log", "/var/log/jc*"):
        assert path in by_path
    alice = [s for s in files if s.path.startswith("/Users/alice/")]
    assert {destination(s.dest, s.user).split("/")[2] for s in alice} == {"alice"}
    assert "/Users/alice/Library/Logs/JumpCloud-Remote-Assist" in by_path
    bob = by_path["/Users/bob/Library/Logs/JumpCloud/jc-user-agent.log"]
    assert destination(bob.dest, bob.user) == "logs/users/bob" and bob.within == "/Users/bob"
    assert all(s.path.startswith("/") for s in files)
    argvs = {s.argv: s for s in commands}
    assert ("sw_vers",) in argvs
    assert ("launchctl", "print", "system/com.jumpcloud.darwin-agent") in argvs
    assert ("launchctl", "print", "system/com.jumpcloud.agent-updater") in argvs
    assert ("softwareupdate", "--history") in argvs
    log_show = next(s for s in commands if s.argv[:2] == ("log", "show"))
    assert log_show.timeout == 120 and "--last" in log_show.argv
    assert len({s.dest for s in commands}) == len(commands)   # no two outputs share a file
    assert all(s.timeout > 0 for s in commands)


def test_root_remote_assist_logs_are_declared():
    by_path = {s.path: s for s in offline(BIGSUR).sources() if isinstance(s, FileSource)}
    remote = by_path["/var/root/Library/Logs/JumpCloud-Remote-Assist"]
    assert remote.recursive and destination(remote.dest, remote.user) == "logs/users/root/remote-assist"


def test_never_collect_defaults_users_and_conf_paths():
    sonoma = offline(SONOMA).never_collect()
    for path in ("/opt/jc/client.key", "/opt/jc/client.crt", "/opt/jc/ca.crt",
                 "/var/run/JumpCloud-SecureToken-Creds.txt",
                 "/private/var/run/JumpCloud-SecureToken-Creds.txt",
                 "/Users/alice/Library/Keychains/jumpcloud-device-trust-keychain-db",
                 "/Users/bob/Library/Keychains/jumpcloud-device-trust-keychain-db"):
        assert path in sonoma
    assert len(sonoma) == len(set(sonoma))
    ventura = offline(VENTURA).never_collect()
    assert "/Library/Application Support/JumpCloud/certs/device.key" in ventura
    assert "/Library/Application Support/JumpCloud/certs/device.crt" in ventura
    assert "/opt/jc/certs/ca.crt" in ventura          # relative paths are the agent dir's
    assert "/opt/jc/client.key" in ventura            # the defaults stay too


def test_never_collect_survives_a_broken_conf(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(VENTURA, root)
    (root / "opt/jc/jcagent.conf").write_text("{not json")
    paths = offline(root).never_collect()
    assert "/opt/jc/client.key" in paths
    assert not any("device.key" in p for p in paths)


@pytest.mark.parametrize("fixture", [SONOMA, VENTURA, BIGSUR])
def test_no_declared_source_reaches_a_never_collect_path(fixture):
    platform = offline(fixture)
    for path in platform.never_collect():
        assert not _covered(path, platform.sources()), f"{path} would be collected"


# --------------------------------------------------------------------------- wiring


def test_get_platform_builds_macos_for_a_root():
    platform = get_platform("macos", root=SONOMA)
    assert isinstance(platform, MacOS) and platform.family == "macos"
    assert platform.live is False
    assert platform.os_info().version == "14.4.1"


def test_naive_now_is_taken_as_utc():
    platform = MacOS(SONOMA, live=False, now=datetime(2024, 4, 20))
    assert platform.now == utc(2024, 4, 20)
    assert has_note(platform.patch_level().notes, "4 days")
