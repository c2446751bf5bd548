"""platforms.linux against fixture roots laid out as real Linux filesystems.

Every root under tests/fixtures/linux/ is copied to a temporary folder first, because
git keeps neither modification times nor compressed rotations the way a live system
has them: metadata ages and ``.gz`` logs are set up per test, from "now" fixed below.
Command outputs (``systemctl show``, ``apt-get -s``, ``dnf updateinfo``) replay
recordings in tests/fixtures/linux/commands/.
"""
from __future__ import annotations

from collector.destname import destination

import gzip
import json
import os
import shutil
import subprocess
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import assume, given, settings, strategies as st

from collector.sources import CommandSource, FileSource
from platforms import _pkgdb as pkgdb
from platforms import linux
from platforms.base import ProcessInfo
from platforms.linux import Linux, parse_os_release
from platforms.pkgversion import debian_compare, rpm_compare, split_debian_version
from tests.replay import ReplayRunner

FIXTURES = Path(__file__).parent / "fixtures" / "linux"
COMMANDS = FIXTURES / "commands"
NOW = datetime(2024, 3, 20, 12, 0, 0)


def materialize(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root, symlinks=True)
    return root


def set_mtime(root: Path, pattern: str, when: datetime) -> int:
    stamp = when.timestamp()
    paths = [p for p in root.glob(pattern) if not p.is_symlink()]
    for path in paths:
        os.utime(path, (stamp, stamp))
    return len(paths)


def refresh_apt(root: Path, when: datetime) -> None:
    assert set_mtime(root, "var/lib/apt/lists/*_InRelease", when)
    set_mtime(root, "var/lib/apt/periodic/update-success-stamp", when)


def replay(*scenarios: str) -> ReplayRunner:
    recordings = {}
    for scenario in scenarios:
        recordings.update(ReplayRunner.from_dir(COMMANDS / scenario).recordings)
    return ReplayRunner(recordings)


def live_linux(root: Path, monkeypatch, runner=None, kernel: str = "5.15.0-101-generic",
               processes=None, now: datetime = NOW) -> Linux:
    """A platform that believes ``root`` is the running system: kernel, architecture
    and hostname from a stand-in for uname, commands from recordings."""
    monkeypatch.setattr(linux, "_live_identity", lambda: (kernel, "x86_64", "live-host"))
    return Linux(root, runner=runner or ReplayRunner({}), processes=processes or (lambda: []),
                 live=True, now=now)


# --------------------------------------------------------------------------- versions

DEBIAN_CASES = [
    ("1.0", "1.0", 0), ("1.0", "1.0-0", 0), ("0:1.0", "1.0", 0), ("00001.0", "1.0", 0),
    ("1.9", "1.10", -1), ("1:1.0", "2.0", 1), ("1.0~rc1", "1.0", -1), ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1), ("1.0", "1.0+", -1), ("1.0", "1.0a", -1), ("1.0a", "1.0.", -1),
    ("1.2.3-1-2", "1.2.3-1-10", -1), ("2.0-1", "2.0-1ubuntu1", -1),
    # Real pairs from a Debian 12 machine and Ubuntu 22.04's security pocket.
    ("3.0.19-1~deb12u2", "3.0.22-1~deb12u2", -1), ("5.4.1-1", "5.4.1-1+deb12u2", -1),
    ("1:9.2p1-2+deb12u6", "1:9.2p1-2+deb12u9", -1), ("7.88.1-10+deb12u14", "7.88.1-10+deb12u5", 1),
    ("2.36-9+deb12u14", "2.36-9+deb12u7", 1), ("1:2.39.5-0+deb12u3", "1:2.39.5-0+deb12u2", 1),
    ("2.9.13+dfsg-1ubuntu0.3", "2.9.13+dfsg-1ubuntu0.4", -1), ("2024a-0ubuntu0.22.04", "2024a-0ubuntu0.22.04.1", -1),
]


@pytest.mark.parametrize("left,right,expected", DEBIAN_CASES)
def test_debian_compare(left, right, expected):
    assert debian_compare(left, right) == expected
    assert debian_compare(right, left) == -expected


def test_split_debian_version():
    assert split_debian_version("1:9.2p1-2+deb12u6") == (1, "9.2p1", "2+deb12u6")
    assert split_debian_version("1.2.3-1-2") == (0, "1.2.3-1", "2")
    assert split_debian_version("5.4.1") == (0, "5.4.1", "")


_DEB_VERSION = st.from_regex(r"\A([0-9]:)?[0-9][0-9a-z.+~]{0,6}(-[0-9a-z.+~]{1,4})?\Z")


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is the reference; not installed here")
@settings(max_examples=150, deadline=None)
@given(_DEB_VERSION, _DEB_VERSION)
def test_debian_compare_agrees_with_dpkg(left, right):
    def dpkg(op: str) -> bool:
        done = subprocess.run(["dpkg", "--compare-versions", left, op, right], capture_output=True)
        assume(not done.stderr)   # a version dpkg itself calls invalid proves nothing
        return done.returncode == 0

    expected = -1 if dpkg("lt") else 0 if dpkg("eq") else 1
    assert debian_compare(left, right) == expected


@given(_DEB_VERSION, _DEB_VERSION, _DEB_VERSION)
def test_debian_compare_is_an_ordering(a, b, c):
    assert debian_compare(a, b) == -debian_compare(b, a)
    if debian_compare(a, b) <= 0 and debian_compare(b, c) <= 0:
        assert debian_compare(a, c) <= 0


RPM_CASES = [  # from rpm's own rpmvercmp test suite
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0.1", "2.0.1", 0), ("2.0", "2.0.1", -1),
    ("2.0.1a", "2.0.1", 1), ("5.5p1", "5.5p2", -1), ("5.5p10", "5.5p1", 1), ("10xyz", "10.1xyz", -1),
    ("xyz10", "xyz10.1", -1), ("xyz.4", "8", -1), ("xyz.4", "2", -1), ("5.5p2", "5.6p1", -1),
    ("6.0.rc1", "6.0", 1), ("10b2", "10a1", 1), ("1.0a", "1.0aa", -1), ("10.0001", "10.1", 0),
    ("10.0001", "10.0039", -1), ("4.999.9", "5.0", -1), ("20101121", "20101122", -1),
    ("2.0", "2_0", 0), ("a+", "a_", 0), ("+_", "_+", 0), ("1.0~rc1", "1.0", -1),
    ("1.0~rc1", "1.0~rc2", -1), ("1.0~rc1~git123", "1.0~rc1", -1), ("1.0^", "1.0", 1),
    ("1.0^git1", "1.01", -1), ("1.0^20160101", "1.0^20160102", -1), ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
    # Kernel releases as uname -r prints them.
    ("5.15.0-91-generic", "5.15.0-101-generic", -1),
    ("5.14.0-503.40.1.el9_5.x86_64", "5.14.0-570.17.1.el9_6.x86_64", -1),
    ("6.8.5-301.fc40.x86_64", "6.10.4-200.fc40.x86_64", -1),
]


@pytest.mark.parametrize("left,right,expected", RPM_CASES)
def test_rpm_compare(left, right, expected):
    assert rpm_compare(left, right) == expected
    assert rpm_compare(right, left) == -expected


# --------------------------------------------------------------------------- os-release

OS_CASES = [
    # root, PRETTY_NAME, ID, ID_LIKE, VERSION, VERSION_ID, codename, file read
    ("ubuntu2204", "Ubuntu 22.04.4 LTS", "ubuntu", ("debian",), "22.04.4 LTS (Jammy Jellyfish)", "22.04", "jammy", "/etc/os-release"),
    ("ubuntu2404", "Ubuntu 24.04.3 LTS", "ubuntu", ("debian",), "24.04.3 LTS (Noble Numbat)", "24.04", "noble", "/etc/os-release"),
    ("debian12", "Debian GNU/Linux 12 (bookworm)", "debian", (), "12 (bookworm)", "12", "bookworm", "/etc/os-release"),
    ("rhel9", "Red Hat Enterprise Linux 9.6 (Plow)", "rhel", ("fedora",), "9.6 (Plow)", "9.6", "", "/etc/os-release"),
    ("rocky9", "Rocky Linux 9.5 (Blue Onyx)", "rocky", ("rhel", "centos", "fedora"), "9.5 (Blue Onyx)", "9.5", "", "/etc/os-release"),
    ("almalinux9", "AlmaLinux 9.4 (Seafoam Ocelot)", "almalinux", ("rhel", "centos", "fedora"), "9.4 (Seafoam Ocelot)", "9.4", "", "/usr/lib/os-release"),
    ("centos7", "CentOS Linux 7 (Core)", "centos", ("rhel", "fedora"), "7 (Core)", "7", "", "/etc/os-release"),
    ("amzn2023", "Amazon Linux 2023", "amzn", ("fedora",), "2023", "2023", "", "/etc/os-release"),
    ("fedora40", "Fedora Linux 40 (Server Edition)", "fedora", (), "40 (Server Edition)", "40", "", "/etc/os-release"),
    ("opensuse-leap155", "openSUSE Leap 15.5", "opensuse-leap", ("suse", "opensuse"), "15.5", "15.5", "", "/etc/os-release"),
    ("sles15sp5", "SUSE Linux Enterprise Server 15 SP5", "sles", ("suse",), "15-SP5", "15.5", "", "/etc/os-release"),
    ("popos2204", "Pop!_OS 22.04 LTS", "pop", ("ubuntu", "debian"), "22.04 LTS", "22.04", "jammy", "/etc/os-release"),
    ("ol9", "Oracle Linux Server 9.4", "ol", ("fedora",), "9.4", "9.4", "", "/etc/os-release"),
]


@pytest.mark.parametrize("root,name,os_id,id_like,version,version_id,codename,source", OS_CASES)
def test_os_info_from_real_os_release_files(root, name, os_id, id_like, version, version_id, codename, source):
    info = Linux(FIXTURES / root, live=False).os_info()
    assert (info.family, info.name, info.id, info.id_like) == ("linux", name, os_id, id_like)
    assert (info.version, info.version_id, info.codename, info.source) == (version, version_id, codename, source)
    assert info.kernel == ""          # the running kernel of a disk is unknowable


def test_absolute_symlink_is_followed_inside_the_root():
    # etc/os-release -> /usr/lib/os-release: on this host that path is another OS.
    root = FIXTURES / "opensuse-leap155"
    assert os.readlink(root / "etc/os-release") == "/usr/lib/os-release"
    assert Linux(root, live=False).os_info().id == "opensuse-leap"


def test_inside_never_climbs_out_of_the_root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/secret").write_text("inside")
    os.symlink("../../../../../../etc", tmp_path / "up")
    platform = Linux(tmp_path, live=False)
    assert platform.inside("/up/secret") == tmp_path / "etc/secret"
    assert platform.read_text("/up/secret") == "inside"


def test_os_release_syntax():
    text = r'''# comment line
  # indented comment

NAME="Example \"Quoted\" \$HOME \\ Linux"
ID='ex$ample'
ID_LIKE="debian ubuntu"
VERSION_ID=1.0\ beta
PRETTY_NAME="unterminated
BAD KEY=ignored
EMPTY=""
'''
    values = parse_os_release(text)
    assert values["NAME"] == 'Example "Quoted" $HOME \\ Linux'
    assert values["ID"] == "ex$ample"
    assert values["ID_LIKE"] == "debian ubuntu"
    assert values["VERSION_ID"] == "1.0 beta"
    assert values["EMPTY"] == ""
    assert "PRETTY_NAME" not in values and "BAD KEY" not in values


def test_no_os_release_means_unknown_not_a_guess(tmp_path):
    info = Linux(tmp_path, live=False).os_info()
    assert (info.name, info.id, info.version_id, info.source) == ("", "", "", "")


@pytest.mark.parametrize("root,arch,hostname", [
    ("ubuntu2204", "x86_64", "jc-ubuntu-01"),      # dpkg's own architecture
    ("ubuntu2404", "aarch64", "noble-arm"),
    ("debian12", "x86_64", "deb12-build"),
    ("rhel9", "x86_64", "rhel9-web01.example.com"),  # the kernels' suffix
    ("fedora40", "x86_64", ""),
    ("opensuse-leap155", "", "leap155.example.com"),  # older SUSE spelling etc/HOSTNAME
])
def test_offline_arch_and_hostname(root, arch, hostname):
    info = Linux(FIXTURES / root, live=False).os_info()
    assert (info.arch, info.hostname) == (arch, hostname)


def test_live_identity_comes_from_this_machine(tmp_path, monkeypatch):
    info = live_linux(materialize(tmp_path, "ubuntu2204"), monkeypatch).os_info()
    assert (info.kernel, info.arch, info.hostname) == ("5.15.0-101-generic", "x86_64", "live-host")


# --------------------------------------------------------------------------- kernels and reboot


def test_installed_kernels_use_version_order_not_text_order():
    kernels = Linux(FIXTURES / "ubuntu2204", live=False).installed_kernels()
    # 5.15.0-88 left only a DKMS module behind: not installed.
    assert kernels == ["5.15.0-91-generic", "5.15.0-101-generic"]


@pytest.mark.parametrize("root,newest", [
    ("rhel9", "5.14.0-570.17.1.el9_6.x86_64"),       # rescue image ignored
    ("fedora40", "6.10.4-200.fc40.x86_64"),          # only in usr/lib/modules, via lib -> usr/lib
    ("ubuntu2404", "6.8.0-45-generic"),
    ("centos7", "3.10.0-1160.119.1.el7.x86_64"),
])
def test_newest_kernel(root, newest):
    platform = Linux(FIXTURES / root, live=False, now=NOW)
    assert platform.patch_level().newest_kernel == newest
    assert not any("rescue" in kernel for kernel in platform.installed_kernels())


def test_reboot_required_file(tmp_path):
    level = Linux(materialize(tmp_path, "ubuntu2204"), live=False, now=NOW).patch_level()
    assert level.pending_reboot is True
    assert level.running_kernel == ""
    assert level.pending_updates[:2] == ["linux-image-5.15.0-101-generic", "linux-base"]
    assert level.pending_updates.count("linux-image-5.15.0-101-generic") == 1


def test_reboot_unknown_offline_without_the_file(tmp_path):
    root = materialize(tmp_path, "ubuntu2204")
    (root / "run/reboot-required").unlink()
    level = Linux(root, live=False, now=NOW).patch_level()
    assert level.pending_reboot is None
    assert any("pending reboot unknown" in n for n in level.notes)


@pytest.mark.parametrize("running,pending", [
    ("5.15.0-91-generic", True),     # newer kernel installed, not booted
    ("5.15.0-101-generic", False),
    ("5.15.0-105-generic", False),   # booted a kernel since removed from disk
])
def test_running_kernel_against_newest(tmp_path, monkeypatch, running, pending):
    root = materialize(tmp_path, "ubuntu2204")
    (root / "run/reboot-required").unlink()
    level = live_linux(root, monkeypatch, kernel=running).patch_level()
    assert (level.running_kernel, level.newest_kernel) == (running, "5.15.0-101-generic")
    assert level.pending_reboot is pending
    assert any("older than installed" in n for n in level.notes) is pending


def test_reboot_file_wins_over_equal_kernels(tmp_path, monkeypatch):
    level = live_linux(materialize(tmp_path, "ubuntu2204"), monkeypatch).patch_level()
    assert level.pending_reboot is True


# --------------------------------------------------------------------------- last update


def test_last_update_is_the_newest_install_or_upgrade(tmp_path):
    level = Linux(materialize(tmp_path, "ubuntu2204"), live=False, now=NOW).patch_level()
    # apt's End-Date beats dpkg's last install line; the later removal is not an update.
    assert level.last_update == datetime(2024, 3, 11, 9, 31, 22)


def test_last_update_from_debian_logs():
    level = Linux(FIXTURES / "debian12", live=False, now=NOW).patch_level()
    assert level.last_update == datetime(2026, 5, 9, 7, 28, 50)


def test_last_update_from_rotated_gzip_history(tmp_path):
    root = materialize(tmp_path, "ubuntu2404")
    apt_log = root / "var/log/apt"
    for rotation in ("history.log.1", "history.log.2"):
        with open(FIXTURES / "rotated" / rotation, "rb") as src, gzip.open(apt_log / f"{rotation}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    assert (apt_log / "history.log").stat().st_size == 0      # just rotated
    level = Linux(root, live=False, now=NOW).patch_level()
    assert level.last_update == datetime(2024, 9, 5, 6, 41, 25)


def test_corrupt_gzip_rotation_gives_what_it_can(tmp_path):
    path = tmp_path / "history.log.1.gz"
    blob = gzip.compress((FIXTURES / "rotated" / "history.log.1").read_bytes() * 50)
    path.write_bytes(blob[: len(blob) // 2])
    assert pkgdb.apt_history_newest(pkgdb.iter_lines(path)) == datetime(2024, 9, 5, 6, 41, 25)


def test_last_update_from_dnf_log_in_utc():
    level = Linux(FIXTURES / "rhel9", live=False, now=datetime(2025, 6, 20)).patch_level()
    # 16:41:02+0200 is 14:41:02 UTC, later than 09:14:11+0000; the Erase is not an update.
    assert level.last_update == datetime(2025, 6, 14, 14, 41, 2)


@pytest.mark.parametrize("written,newest", [
    (datetime(2024, 6, 3, 9, 0), datetime(2024, 6, 2, 14, 22, 10)),   # the Erase after it is no update
    # Written in February 2025: the June lines are from 2024, January's from 2025.
    (datetime(2025, 2, 10, 8, 0), datetime(2025, 1, 12, 10, 1, 35)),
])
def test_last_update_from_yum_log_year_from_mtime(tmp_path, written, newest):
    root = materialize(tmp_path, "centos7")
    set_mtime(root, "var/log/yum.log", written)
    level = Linux(root, live=False, now=written + timedelta(days=1)).patch_level()
    assert level.last_update == newest


def test_yum_log_rotation_read_when_current_is_empty(tmp_path):
    root = materialize(tmp_path, "centos7")
    (root / "var/log/yum.log").write_text("")
    set_mtime(root, "var/log/yum.log-20240101", datetime(2024, 1, 1, 3, 0))
    level = Linux(root, live=False, now=datetime(2024, 3, 1)).patch_level()
    assert level.last_update == datetime(2023, 12, 28, 11, 0)


def test_last_update_from_zypp_history():
    level = Linux(FIXTURES / "opensuse-leap155", live=False, now=NOW).patch_level()
    assert level.last_update == datetime(2024, 2, 20, 10, 12, 1)


def test_last_update_unknown_without_logs(tmp_path):
    level = Linux(tmp_path, live=False, now=NOW).patch_level()
    assert level.last_update is None
    assert any("last update unknown" in n for n in level.notes)


# --------------------------------------------------------------------------- metadata and security


def test_pending_security_updates_from_lists(tmp_path):
    root = materialize(tmp_path, "ubuntu2204")
    refresh_apt(root, NOW - timedelta(days=2))
    level = Linux(root, live=False, now=NOW).patch_level()
    assert level.metadata_fresh is True
    # libssl3:i386, sudo and tzdata are current, curl is newer than the security
    # pocket, apache2 only has config files left, bash is newer only in -updates.
    assert level.pending_security_updates == 3
    assert {"libssl3", "libxml2", "openssl"} <= set(level.pending_updates)
    assert not {"apache2", "bash", "curl", "sudo", "tzdata", "openssh-server"} & set(level.pending_updates)


def test_stale_metadata_means_security_unknown(tmp_path):
    root = materialize(tmp_path, "ubuntu2204")
    refresh_apt(root, NOW - timedelta(days=30))
    level = Linux(root, live=False, now=NOW).patch_level()
    assert level.metadata_fresh is False
    assert level.pending_security_updates is None
    assert any("stale" in n for n in level.notes)


def test_freshness_takes_the_newest_metadata_file(tmp_path):
    root = materialize(tmp_path, "ubuntu2204")
    refresh_apt(root, NOW - timedelta(days=30))
    set_mtime(root, "var/lib/apt/lists/archive.ubuntu.com_ubuntu_dists_jammy_InRelease", NOW - timedelta(days=6))
    assert Linux(root, live=False, now=NOW).patch_level().metadata_fresh is True


def test_real_debian_data(tmp_path):
    root = materialize(tmp_path, "debian12")
    refresh_apt(root, datetime(2026, 11, 20))
    level = Linux(root, live=False, now=datetime(2026, 11, 22)).patch_level()
    # Security fixes newer than what is installed (epochs, "~deb12u", arch "all");
    # curl, libc6 and git are newer than their security builds, bash has none.
    assert level.pending_security_updates == 7
    assert set(level.pending_updates) == {"libexpat1", "libgcrypt20", "liblzma5", "libssl3", "openssh-client",
                                          "openssl", "tzdata"}
    assert level.newest_kernel == "6.1.0-28-amd64"


def test_lz4_lists_offline_are_unknown(tmp_path):
    root = materialize(tmp_path, "debian12")
    lists = root / "var/lib/apt/lists"
    for path in lists.glob("*_Packages"):
        path.rename(path.with_name(path.name + ".lz4"))
    refresh_apt(root, datetime(2026, 11, 20))
    level = Linux(root, live=False, now=datetime(2026, 11, 22)).patch_level()
    assert level.pending_security_updates is None
    assert any("compressed" in n for n in level.notes)


def test_lz4_lists_live_ask_apt_simulation(tmp_path, monkeypatch):
    root = materialize(tmp_path, "debian12")
    for path in (root / "var/lib/apt/lists").glob("*_Packages"):
        path.rename(path.with_name(path.name + ".lz4"))
    refresh_apt(root, datetime(2026, 11, 20))
    runner = replay("apt-simulate")
    level = live_linux(root, monkeypatch, runner=runner, kernel="6.1.0-28-amd64",
                       now=datetime(2026, 11, 22)).patch_level()
    assert runner.calls == [("apt-get", "-s", "dist-upgrade")]
    # 81 of the 136 upgrades in the recording come from oldstable-security.
    assert level.pending_security_updates == 81
    assert {"liblzma5", "libgcrypt20", "libssl3"} <= set(level.pending_updates)
    assert "bash" not in level.pending_updates                 # plain oldstable point release


def test_apt_simulation_parser_counts_security_sources_only():
    text = (COMMANDS / "apt-simulate" / "apt-get-s-dist-upgrade.stdout").read_text()
    names = pkgdb.apt_simulation_security(text)
    inst = [line for line in text.splitlines() if line.startswith("Inst ")]
    assert len(inst) == 136 and len(names) == 81 and len(set(names)) == 81
    assert "base-files" not in names and "liblzma5" in names


def test_unreadable_dpkg_status_is_not_zero_updates(tmp_path):
    root = materialize(tmp_path, "debian12")
    (root / "var/lib/dpkg/status").write_text("")
    refresh_apt(root, datetime(2026, 11, 20))
    level = Linux(root, live=False, now=datetime(2026, 11, 22)).patch_level()
    assert level.pending_security_updates is None


def test_no_security_lists(tmp_path):
    root = materialize(tmp_path, "debian12")
    for path in (root / "var/lib/apt/lists").glob("*_Packages"):
        path.unlink()
    refresh_apt(root, datetime(2026, 11, 20))
    level = Linux(root, live=False, now=datetime(2026, 11, 22)).patch_level()
    assert level.pending_security_updates is None
    assert any("no security package lists" in n for n in level.notes)


def test_rpm_offline_security_unknown(tmp_path):
    root = materialize(tmp_path, "rhel9")
    set_mtime(root, "var/cache/dnf/*/repodata/repomd.xml", datetime(2025, 6, 19))
    level = Linux(root, live=False, now=datetime(2025, 6, 20)).patch_level()
    assert level.metadata_fresh is True
    assert level.pending_security_updates is None
    assert any("only dnf on the live system" in n for n in level.notes)


@pytest.mark.parametrize("scenario,count,names", [
    ("dnf-security", 4, ["curl", "libcurl", "openssl-libs", "python3-setuptools"]),
    ("dnf-security-none", 0, []),
])
def test_dnf_security_live(tmp_path, monkeypatch, scenario, count, names):
    root = materialize(tmp_path, "fedora40")
    set_mtime(root, "var/cache/dnf/*/repodata/repomd.xml", NOW - timedelta(hours=5))
    runner = replay(scenario)
    level = live_linux(root, monkeypatch, runner=runner, kernel="6.10.4-200.fc40.x86_64").patch_level()
    assert level.pending_security_updates == count
    assert level.pending_updates == names
    assert level.pending_reboot is False


def test_dnf_not_answering_is_unknown(tmp_path, monkeypatch):
    root = materialize(tmp_path, "fedora40")
    set_mtime(root, "var/cache/dnf/*/repodata/repomd.xml", NOW - timedelta(hours=5))
    level = live_linux(root, monkeypatch, kernel="6.10.4-200.fc40.x86_64").patch_level()
    assert level.pending_security_updates is None
    assert any("dnf updateinfo gave no answer" in n for n in level.notes)


def test_dnf_output_in_an_unknown_format_is_not_zero():
    assert pkgdb.dnf_security_packages("Name Type Severity Package Issued\nsomething else\n") is None
    assert pkgdb.dnf_security_packages("") == []


def test_stale_yum_metadata(tmp_path):
    root = materialize(tmp_path, "centos7")
    set_mtime(root, "var/cache/yum/x86_64/7/base/*", datetime(2024, 1, 3))
    level = Linux(root, live=False, now=datetime(2024, 3, 1)).patch_level()
    assert level.metadata_fresh is False and level.pending_security_updates is None


def test_no_metadata_at_all(tmp_path):
    level = Linux(FIXTURES / "sles15sp5", live=False, now=NOW).patch_level()
    assert level.metadata_fresh is None and level.pending_security_updates is None


def test_big_logs_are_streamed(tmp_path):
    entry = ("\nStart-Date: 2023-01-01  00:00:00\nCommandline: apt upgrade\n"
             "Upgrade: " + ", ".join(f"pkg{i}:amd64 (1.0-1, 1.0-2)" for i in range(40)) +
             "\nEnd-Date: 2023-01-01  00:00:05\n")
    path = tmp_path / "history.log"
    with open(path, "w") as fh:
        for _ in range(12000):                    # ~ 15 MB
            fh.write(entry)
        fh.write(entry.replace("2023-01-01  00:00:05", "2024-02-02  02:02:02"))
        fh.write("x" * (3 * pkgdb.MAX_LINE) + "\n")   # one absurd line
    tracemalloc.start()
    newest = pkgdb.apt_history_newest(pkgdb.iter_lines(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert newest == datetime(2024, 2, 2, 2, 2, 2)
    assert peak < 2 * 1024 * 1024


# --------------------------------------------------------------------------- agent


def test_agent_offline_from_unit_files():
    info = Linux(FIXTURES / "ubuntu2204", live=False).agent_info()
    assert (info.installed, info.version, info.service_name) == (True, "1.184.0", "jcagent.service")
    # The enable link points at /lib/... of the examined system, absent on this host.
    assert (info.service_state, info.service_enabled, info.running) == ("unknown", True, None)
    assert info.processes == []


def test_agent_offline_installed_not_enabled():
    info = Linux(FIXTURES / "debian12", live=False).agent_info()
    assert (info.installed, info.version, info.service_state, info.service_enabled) == (True, "1.171.0", "unknown", False)


def test_agent_offline_masked(tmp_path):
    root = materialize(tmp_path, "debian12")
    unit = root / "etc/systemd/system/jcagent.service"
    unit.unlink()
    os.symlink("/dev/null", unit)
    info = Linux(root, live=False).agent_info()
    assert info.service_enabled is False
    assert any("masked" in n for n in info.notes)


def test_agent_absent():
    info = Linux(FIXTURES / "ubuntu2404", live=False).agent_info()
    assert (info.installed, info.version, info.service_state) == (False, "", "absent")


AGENT_PROCESSES = [ProcessInfo(pid=1187, name="jumpcloud-agent"), ProcessInfo(pid=2, name="kthreadd"),
                   ProcessInfo(pid=900, name="jumpcloud-agent-updater")]


@pytest.mark.parametrize("scenario,state,enabled,running,note", [
    ("jcagent-running", "running", True, True, "main PID 1187"),
    ("jcagent-stopped", "stopped", False, False, None),
    ("jcagent-failed", "stopped", True, False, "failed (failed)"),
    ("jcagent-restarting", "stopped", True, False, "activating (auto-restart)"),
    ("jcagent-not-found", "absent", None, False, "does not know"),
])
def test_agent_live_from_systemctl(tmp_path, monkeypatch, scenario, state, enabled, running, note):
    runner = replay(scenario)
    lister = (lambda: AGENT_PROCESSES) if running else (lambda: [])
    info = live_linux(materialize(tmp_path, "rhel9"), monkeypatch, runner=runner, processes=lister).agent_info()
    assert runner.calls == [("systemctl", "show", "jcagent.service",
                             "--property=LoadState,ActiveState,SubState,UnitFileState,MainPID")]
    assert (info.service_state, info.service_enabled, info.running) == (state, enabled, running)
    assert [p.pid for p in info.processes] == ([1187] if running else [])
    if note:
        assert any(note in n for n in info.notes), info.notes


@pytest.mark.parametrize("root,state,enabled", [("ubuntu2204", "unknown", True), ("ubuntu2404", "absent", None)])
def test_agent_live_without_systemd_falls_back_to_unit_files(tmp_path, monkeypatch, root, state, enabled):
    info = live_linux(materialize(tmp_path, root), monkeypatch, runner=replay("no-systemd")).agent_info()
    assert (info.service_state, info.service_enabled) == (state, enabled)
    assert any("System has not been booted with systemd" in n for n in info.notes)


def test_agent_sysv_init_script(tmp_path):
    (tmp_path / "etc/init.d").mkdir(parents=True)
    (tmp_path / "etc/init.d/jcagent").write_text("#!/bin/sh\n")
    info = Linux(tmp_path, live=False).agent_info()
    assert (info.installed, info.service_state) == (False, "unknown")
    assert any("SysV" in n for n in info.notes)


# --------------------------------------------------------------------------- users


def test_user_homes_from_passwd():
    platform = Linux(FIXTURES / "ubuntu2204", live=False)
    # carol's home is not on this disk, syslog (uid 104) and nobody are system users.
    assert platform.user_homes() == ["/root", "/home/alice", "/home/bob"]
    assert platform.local_users()[1] == ("alice", "/home/alice")


def test_user_homes_follow_login_defs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/login.defs").write_text("# shadow\nUID_MIN\t\t\t 2000\nUID_MAX\t\t\t 2999\n")
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                         "old:x:1000:1000::/home/old:/bin/bash\n"
                                         "new:x:2001:2001::/home/new:/bin/bash\n"
                                         "dup:x:2002:2002::/home/new:/bin/bash\n"
                                         "svc:x:3000:3000::/home/svc:/bin/bash\n")
    for home in ("root", "home/old", "home/new", "home/svc"):
        (tmp_path / home).mkdir(parents=True)
    assert Linux(tmp_path, live=False).local_users() == [("root", "/root"), ("new", "/home/new")]


# --------------------------------------------------------------------------- sources


def test_sources_cover_the_footprint():
    sources = Linux(FIXTURES / "ubuntu2204", live=False).sources()
    files = {s.path: s for s in sources if isinstance(s, FileSource)}
    for path in ("/var/log/jcagent.log", "/var/log/jcagent.log.*", "/var/log/jcUpdate.log", "/var/log/jc*",
                 "/var/log/jumpcloud", "/opt/jc/jcagent.conf", "/opt/jc/agentBootstrap.json", "/opt/jc/version.txt",
                 "/opt/jc/managedUsers.json", "/opt/jc/policyConf.json", "/opt/jc/policies",
                 "/opt/jc/packageUpgradeBackup.json", "/opt/jc/loglevel.cache", "/opt/jc/jcagentInstall.log",
                 "/etc/jcagent-proxy.conf", "/var/log/auth.log", "/var/log/secure", "/var/log/syslog",
                 "/var/log/messages", "/var/log/apt/history.log", "/var/log/dpkg.log"):
        assert path in files, path
    assert files["/opt/jc/jcagent.conf"].redact == "json" and files["/opt/jc/jcagent.conf"].kind == "config"
    assert files["/opt/jc/agentBootstrap.json"].redact == "json"
    assert files["/opt/jc/policies"].recursive and files["/var/log/jumpcloud"].recursive
    assert files["/var/log/auth.log"].kind == "system" and files["/var/log/auth.log"].dest == "logs/system"
    assert files["/var/log/jcagent.log"].dest == "logs/agent"
    assert files["/opt/jc/version.txt"].dest == "config/agent"
    assert all(s.path.startswith("/") for s in files.values())
    assert len(files) == len([s for s in sources if isinstance(s, FileSource)])   # no path twice


def test_sources_per_user():
    sources = Linux(FIXTURES / "ubuntu2204", live=False).sources()
    user = {(s.path, destination(s.dest, s.user)) for s in sources
            if isinstance(s, FileSource) and s.collector == "user-logs"}
    assert ("/home/alice/.config/JumpCloud Password Manager/logs", "logs/users/alice/password-manager") in user
    assert ("/home/alice/.config/JumpCloud-Remote-Assist/logs", "logs/users/alice/remote-assist") in user
    assert ("/home/bob/.config/JumpCloud-Remote-Assist/logs", "logs/users/bob/remote-assist") in user
    assert not any("carol" in path for path, _ in user)


def test_command_sources():
    commands = [s for s in Linux(FIXTURES / "ubuntu2204", live=False).sources() if isinstance(s, CommandSource)]
    argvs = {s.argv for s in commands}
    assert ("systemctl", "status", "jcagent", "--no-pager") in argvs
    assert ("journalctl", "-u", "jcagent", "--no-pager", "-n", "5000") in argvs
    assert ("uname", "-a") in argvs and ("ps", "aux") in argvs
    assert all(s.collector == "commands" and 0 < s.timeout <= 60 for s in commands)
    assert len({s.dest for s in commands}) == len(commands)


# --------------------------------------------------------------------------- never collect

DEFAULT_IDENTITY = ["/opt/jc/client.key", "/opt/jc/client.crt", "/opt/jc/ca.crt"]


def test_never_collect_defaults():
    assert Linux(FIXTURES / "ubuntu2204", live=False).never_collect() == DEFAULT_IDENTITY
    assert Linux(FIXTURES / "ubuntu2404", live=False).never_collect() == DEFAULT_IDENTITY


def test_never_collect_paths_named_by_conf():
    paths = Linux(FIXTURES / "debian12", live=False).never_collect()
    assert paths == DEFAULT_IDENTITY + ["/opt/jc/certs/client.key", "/opt/jc/certs/client.crt",
                                        "/etc/jumpcloud/pki/ca.crt"]


@pytest.mark.parametrize("content", [b"{not json", json.dumps(["clientKey"]).encode(),
                                     b'{"clientKey": "/x.key", "pad": "' + b"a" * (2 * 1024 * 1024) + b'"}'])
def test_never_collect_with_unreadable_conf(tmp_path, content):
    (tmp_path / "opt/jc").mkdir(parents=True)
    (tmp_path / "opt/jc/jcagent.conf").write_bytes(content)
    assert Linux(tmp_path, live=False).never_collect() == DEFAULT_IDENTITY
