"""The End-of-Life / patch verdict against the bundled lifecycle table (data of 2026-08-22).

Linux systems come from real os-release files (tests/fixtures/lifecycle/os-release);
macOS and Windows facts are written as their platforms report them (sw_vers
ProductVersion; registry CurrentBuild, DisplayVersion, EditionID, ProductName).
Expected dates are those of the shared endoflife.date snapshot.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from collector import lifecycle
from collector.lifecycle import load_table, verdict
from platforms.base import Hotfix, OSInfo, PatchLevel, parse_key_values

REPO = Path(__file__).resolve().parent.parent
OS_RELEASE = Path(__file__).parent / "fixtures" / "lifecycle" / "os-release"
DATA_DATE = date(2026, 8, 22)


# --------------------------------------------------------------------------- builders


def linux(fixture: str, **overrides) -> OSInfo:
    """OSInfo from a real os-release file, as the Linux platform reads it."""
    fields = parse_key_values((OS_RELEASE / fixture).read_text(encoding="utf-8"))
    info = OSInfo(
        family="linux", name=fields.get("PRETTY_NAME") or fields.get("NAME", ""),
        id=fields.get("ID", ""), id_like=tuple(fields.get("ID_LIKE", "").split()),
        version=fields.get("VERSION", ""), version_id=fields.get("VERSION_ID", ""),
        codename=fields.get("VERSION_CODENAME", ""), source=f"os-release {fixture}")
    return replace(info, **overrides)


def macos(version: str, name: str = "macOS") -> OSInfo:
    return OSInfo(family="macos", name=name, id="macos", version=version, version_id=version)


def windows(build: int, display: str, edition: str, product_name: str) -> OSInfo:
    """Facts from HKLM\\...\\Windows NT\\CurrentVersion of a client."""
    return OSInfo(family="windows", name=product_name, id="windows", version=display,
                  version_id=f"10.0.{build}", build=str(build), edition=edition,
                  installation_type="Client")


def server(build: int, edition: str, product_name: str, install: str = "Server") -> OSInfo:
    return OSInfo(family="windows", name=product_name, id="windows-server",
                  version_id=f"10.0.{build}", build=str(build), edition=edition,
                  installation_type=install)


def fresh(as_of: date, os_info: OSInfo, **overrides) -> PatchLevel:
    """A machine updated three days ago, nothing waiting, no restart pending."""
    is_linux = os_info.family == "linux"
    patch = PatchLevel(
        pending_reboot=False,
        last_update=datetime.combine(as_of - timedelta(days=3), time(4, 30)),
        pending_security_updates=0 if is_linux else None,
        metadata_fresh=True if is_linux else None,
        running_kernel="6.8.0-45-generic" if is_linux else "",
        newest_kernel="6.8.0-45-generic" if is_linux else "")
    return replace(patch, **overrides)


def judge(os_info: OSInfo, as_of: date = DATA_DATE, **patch_overrides):
    return verdict(os_info, fresh(as_of, os_info, **patch_overrides), as_of)


# --------------------------------------------------------------------------- every product

# (os facts, as_of, status, product, cycle, eol_date)
PRODUCT_CASES = [
    # Windows client: the build picks the release, EditionID the W/E/LTSC cycle.
    pytest.param(windows(26100, "24H2", "Professional", "Windows 10 Pro"), DATA_DATE,
                 "supported", "windows", "11-24h2-w", "2026-10-13", id="win11-24h2-pro"),
    pytest.param(windows(26200, "25H2", "Enterprise", "Windows 10 Enterprise"), DATA_DATE,
                 "supported", "windows", "11-25h2-e", "2028-10-10", id="win11-25h2-enterprise"),
    pytest.param(windows(19045, "22H2", "Professional", "Windows 10 Pro"), DATA_DATE,
                 "eol", "windows", "10-22h2", "2025-10-14", id="win10-22h2-pro"),
    pytest.param(windows(17763, "", "EnterpriseS", "Windows 10 Enterprise LTSC 2019"), DATA_DATE,
                 "supported", "windows", "10-1809-e-lts", "2029-01-09", id="win10-ltsc-2019"),
    pytest.param(windows(26100, "24H2", "IoTEnterpriseS", "Windows 10 IoT Enterprise LTSC"),
                 DATA_DATE, "supported", "windows", "11-24h2-iot-lts", "2034-10-10",
                 id="win11-iot-ltsc-2024"),
    pytest.param(windows(17763, "", "IoTEnterpriseS", "Windows 10 IoT Enterprise LTSC 2019"),
                 DATA_DATE, "supported", "windows", "10-1809-e-lts", "2029-01-09",
                 id="win10-iot-ltsc-2019-shares-enterprise-ltsc"),
    pytest.param(windows(9600, "", "Professional", "Windows 8.1 Pro"), DATA_DATE,
                 "eol", "windows", "8.1", "2023-01-10", id="win8.1"),
    # Windows Server by build; 17763 is both LTSC 2019 and semi-annual 1809.
    pytest.param(server(14393, "ServerStandard", "Windows Server 2016 Standard"), DATA_DATE,
                 "supported", "windows-server", "2016", "2027-01-12", id="server-2016"),
    pytest.param(server(17763, "ServerDatacenter", "Windows Server 2019 Datacenter"), DATA_DATE,
                 "supported", "windows-server", "2019", "2029-01-09", id="server-2019"),
    pytest.param(server(17763, "ServerDatacenter", "Windows Server Datacenter", "Server Core"),
                 DATA_DATE, "eol", "windows-server", "1809-sac", "2020-11-10",
                 id="server-1809-sac"),
    pytest.param(server(20348, "ServerStandard", "Windows Server 2022 Standard"), DATA_DATE,
                 "supported", "windows-server", "2022", "2031-10-14", id="server-2022"),
    pytest.param(server(26100, "ServerDatacenter", "Windows Server 2025 Datacenter"), DATA_DATE,
                 "supported", "windows-server", "2025", "2034-11-14", id="server-2025"),
    pytest.param(server(25398, "ServerDatacenter", "Windows Server Datacenter", "Server Core"),
                 DATA_DATE, "eol", "windows-server", "23h2-ac", "2026-05-12", id="server-23h2"),
    pytest.param(server(9600, "ServerStandard", "Windows Server 2012 R2 Standard"), DATA_DATE,
                 "eol", "windows-server", "2012-r2", "2023-10-10", id="server-2012r2"),
    # macOS: the major version is the cycle; 13 (N-3) is end of life by the data.
    pytest.param(macos("26.6.2", "macOS Tahoe"), DATA_DATE, "supported", "macos", "26", None,
                 id="macos-26"),
    pytest.param(macos("15.7.9"), DATA_DATE, "supported", "macos", "15", None, id="macos-15"),
    pytest.param(macos("14.8.9"), DATA_DATE, "supported", "macos", "14", None, id="macos-14"),
    pytest.param(macos("13.7.8", "macOS Ventura"), DATA_DATE, "eol", "macos", "13",
                 "2025-09-15", id="macos-13-n-3"),
    pytest.param(macos("10.15.7"), DATA_DATE, "eol", "macos", "10.15", "2026-02-02",
                 id="macos-10.15"),
    # Linux, from real os-release files.
    pytest.param(linux("ubuntu-22.04"), DATA_DATE, "supported", "ubuntu", "22.04", "2027-04-01",
                 id="ubuntu-22.04"),
    pytest.param(linux("ubuntu-20.04"), DATA_DATE, "eol", "ubuntu", "20.04", "2025-05-31",
                 id="ubuntu-20.04"),
    pytest.param(linux("debian-13"), DATA_DATE, "supported", "debian", "13", "2028-08-09",
                 id="debian-13"),
    pytest.param(linux("debian-12"), DATA_DATE, "eol", "debian", "12", "2026-07-11",
                 id="debian-12"),
    pytest.param(linux("rhel-9.2", version_id="9.8"), DATA_DATE, "supported", "rhel", "9",
                 "2032-05-31", id="rhel-9.8"),
    pytest.param(linux("rhel-9.2"), DATA_DATE, "unpatched", "rhel", "9", "2032-05-31",
                 id="rhel-9.2-behind-9.8"),
    pytest.param(linux("centos-7"), DATA_DATE, "eol", "centos", "7", "2024-06-30", id="centos-7"),
    pytest.param(linux("centos-stream-9"), DATA_DATE, "supported", "centos-stream", "9",
                 "2027-05-31", id="centos-stream-9"),
    pytest.param(linux("rocky-9.3"), DATA_DATE, "unpatched", "rocky-linux", "9", "2032-05-31",
                 id="rocky-9.3"),
    pytest.param(linux("almalinux-9.4", version_id="9.8"), DATA_DATE, "supported", "almalinux",
                 "9", "2032-05-31", id="almalinux-9.8"),
    pytest.param(linux("ol-8.9"), DATA_DATE, "unpatched", "oracle-linux", "8", "2029-07-31",
                 id="oracle-8.9-behind-8.10"),
    pytest.param(linux("ol-8.9", version_id="8.10"), DATA_DATE, "supported", "oracle-linux", "8",
                 "2029-07-31", id="oracle-8.10"),
    pytest.param(linux("amzn-2"), DATA_DATE, "eol", "amazon-linux", "2", "2026-06-30",
                 id="amazon-linux-2"),
    pytest.param(linux("amzn-2023"), DATA_DATE, "supported", "amazon-linux", "2023", "2029-06-30",
                 id="amazon-linux-2023"),
    pytest.param(linux("fedora-40"), DATA_DATE, "eol", "fedora", "40", "2025-05-13",
                 id="fedora-40"),
    pytest.param(linux("fedora-40", version_id="44"), DATA_DATE, "supported", "fedora", "44",
                 "2027-06-02", id="fedora-44"),
    pytest.param(linux("sles-15-sp5"), DATA_DATE, "eol", "sles", "15.5", "2024-12-31",
                 id="sles-15-sp5"),
    pytest.param(linux("sles-15-sp5", version_id="15.7"), DATA_DATE, "supported", "sles", "15.7",
                 "2031-07-31", id="sles-15-sp7"),
    pytest.param(linux("sles-15-sp5", version_id="15"), DATA_DATE, "eol", "sles", "15.0",
                 "2019-12-31", id="sles-15-ga"),
    pytest.param(linux("opensuse-leap-15.5"), DATA_DATE, "eol", "opensuse", "15.5", "2024-12-31",
                 id="leap-15.5"),
    pytest.param(linux("opensuse-leap-15.5", version_id="16.0"), DATA_DATE, "supported",
                 "opensuse", "16.0", "2027-10-31", id="leap-16.0"),
    pytest.param(linux("pop-22.04"), DATA_DATE, "supported", "pop-os", "22.04", "2027-04-25",
                 id="pop-22.04"),
    # Derivatives: only a codename that names the Ubuntu/Debian base maps them.
    pytest.param(linux("zorin-17"), DATA_DATE, "supported", "ubuntu", "22.04", "2027-04-01",
                 id="zorin-by-jammy"),
    pytest.param(linux("raspbian-12"), DATA_DATE, "eol", "debian", "12", "2026-07-11",
                 id="raspbian-by-bookworm"),
]


@pytest.mark.parametrize("os_info, as_of, status, product, cycle, eol", PRODUCT_CASES)
def test_every_product_maps_to_its_cycle(os_info, as_of, status, product, cycle, eol):
    result = judge(os_info, as_of)
    assert (result.status, result.product, result.cycle) == (status, product, cycle), result.reasons
    assert result.eol_date == (date.fromisoformat(eol) if eol else None)
    assert result.data_date == DATA_DATE
    assert result.reasons and all(r.endswith(".") for r in result.reasons)
    if eol:
        assert result.days_to_eol == (date.fromisoformat(eol) - as_of).days


def test_the_cases_cover_every_product_in_the_table():
    covered = {p.values[3] for p in PRODUCT_CASES}
    assert covered == set(load_table()["products"])


# --------------------------------------------------------------------------- edge days


@pytest.mark.parametrize("os_info, eol", [
    (windows(22631, "23H2", "Enterprise", "Windows 10 Enterprise"), date(2026, 11, 10)),
    (windows(26100, "24H2", "Core", "Windows 10 Home"), date(2026, 10, 13)),
    (linux("fedora-40", version_id="43"), date(2026, 12, 9)),
    (windows(14393, "", "EnterpriseS", "Windows 10 Enterprise 2016 LTSB"), date(2026, 10, 13)),
], ids=["win11-23h2-e", "win11-24h2-home", "fedora-43", "win10-ltsb-2016"])
def test_supported_on_the_eol_date_itself_and_eol_the_day_after(os_info, eol):
    on_the_day = judge(os_info, eol, last_update=datetime.combine(eol, time(1)))
    day_after = judge(os_info, eol + timedelta(days=1))
    assert (on_the_day.status, on_the_day.days_to_eol) == ("supported", 0)
    assert any("in 0 days" in r for r in on_the_day.reasons)
    assert (day_after.status, day_after.days_to_eol) == ("eol", -1)
    assert any(f"reached end of life on {eol}" in r for r in day_after.reasons)


# --------------------------------------------------------------------------- Windows


def test_windows_23h2_pro_and_enterprise_differ_on_2026_11_01():
    as_of = date(2026, 11, 1)
    pro = judge(windows(22631, "23H2", "Professional", "Windows 10 Pro"), as_of)
    ent = judge(windows(22631, "23H2", "Enterprise", "Windows 10 Enterprise"), as_of)
    assert (pro.status, pro.cycle, pro.eol_date) == ("eol", "11-23h2-w", date(2025, 11, 11))
    assert (ent.status, ent.cycle, ent.eol_date) == ("supported", "11-23h2-e", date(2026, 11, 10))
    assert ent.days_to_eol == 9 and any("plan the upgrade" in r for r in ent.reasons)


@pytest.mark.parametrize("edition, family", [
    ("Core", "w"), ("CoreSingleLanguage", "w"), ("Professional", "w"),
    ("ProfessionalWorkstation", "w"), ("ProfessionalEducation", "w"),
    ("Enterprise", "e"), ("EnterpriseN", "e"), ("Education", "e"), ("EducationN", "e"),
    ("IoTEnterprise", "e"),
])
def test_windows_edition_id_chooses_the_home_pro_or_enterprise_cycle(edition, family):
    result = judge(windows(22631, "23H2", edition, "Windows 10 Pro"), date(2026, 11, 1))
    assert result.cycle == f"11-23h2-{family}"


def test_windows_11_is_keyed_on_the_build_not_the_product_name():
    # Windows 11 keeps ProductName "Windows 10 Pro" in the registry.
    win11 = judge(windows(22631, "23H2", "Professional", "Windows 10 Pro"))
    named_11_but_10 = judge(windows(19045, "22H2", "Professional", "Windows 11 Pro"))
    assert win11.cycle == "11-23h2-w" and win11.label.startswith("Windows 11")
    assert named_11_but_10.cycle == "10-22h2" and named_11_but_10.label.startswith("Windows 10")


def test_windows_build_unknown_to_the_data_is_named_by_display_version():
    # An insider/beta build of 23H2 that the data has no entry for.
    result = judge(windows(22635, "23H2", "Enterprise", "Windows 10 Enterprise"), date(2026, 9, 1))
    assert (result.status, result.cycle) == ("supported", "11-23h2-e")


@pytest.mark.parametrize("os_info", [
    windows(22631, "23H2", "EnterpriseS", "Windows 10 Enterprise"),   # no LTSC of 23H2
    windows(22631, "23H2", "Team", "Windows 10 Team"),                # edition not placed
    windows(27000, "", "Professional", "Windows 10 Pro"),             # build not in the data
    OSInfo(family="windows", id="windows", edition="Professional"),   # build unknown
    server(3790, "ServerStandard", "Windows Server 2003"),            # 3 cycles, one build
])
def test_windows_that_cannot_be_placed_is_unknown(os_info):
    result = judge(os_info)
    assert result.status == "unknown" and result.cycle == ""
    assert "jcdiag" in result.reasons[0]


def test_windows_10_esu_is_reported_not_assumed():
    result = judge(windows(19045, "22H2", "Enterprise", "Windows 10 Enterprise"))
    assert result.status == "eol"
    assert result.extended_support == {"available": True, "until": date(2028, 10, 10), "name": "ESU"}
    assert any("Extended Security Updates (ESU)" in r and "enrolled" in r for r in result.reasons)


def test_windows_patch_age_comes_from_hotfix_dates_when_no_update_date():
    os_info = windows(26100, "24H2", "Enterprise", "Windows 10 Enterprise")
    old = [Hotfix("KB5040435", date(2026, 6, 11)), Hotfix("KB5039212", date(2026, 5, 14))]
    recent = old + [Hotfix("KB5041571", date(2026, 8, 14))]
    assert judge(os_info, last_update=None, hotfixes=old).status == "unpatched"
    assert judge(os_info, last_update=None, hotfixes=recent).status == "supported"
    nothing = judge(os_info, last_update=None, hotfixes=[Hotfix("KB5041571")])
    assert nothing.status == "unknown"
    assert any("could not tell when updates were last installed" in r for r in nothing.reasons)


def test_windows_ubr_is_compared_when_the_data_carries_one():
    table = copy.deepcopy(load_table())
    for cycle in table["products"]["windows"]["cycles"]:
        if cycle["cycle"] == "11-24h2-e":
            cycle.update(latest="10.0.26100.4946", ubr=4946)
    os_info = windows(26100, "24H2", "Enterprise", "Windows 10 Enterprise")
    behind = verdict(os_info, fresh(DATA_DATE, os_info, ubr=4652), DATA_DATE, table=table)
    current = verdict(os_info, fresh(DATA_DATE, os_info, ubr=4946), DATA_DATE, table=table)
    assert behind.status == "unpatched" and any("26100.4652" in r for r in behind.reasons)
    assert current.status == "supported"


# --------------------------------------------------------------------------- macOS


def test_macos_behind_its_cycles_latest_is_unpatched():
    result = judge(macos("14.4.1"))
    assert (result.status, result.latest_known) == ("unpatched", "14.8.9")
    assert any("14.4.1" in r and "14.8.9" in r for r in result.reasons)
    assert judge(macos("14.8")).status == "unpatched"        # 14.8 < 14.8.9


def test_macos_n_minus_3_is_eol_and_still_reports_missing_updates():
    result = judge(macos("13.6.1"))
    assert result.status == "eol"
    assert len([r for r in result.reasons if "13.7.8" in r]) == 1


# --------------------------------------------------------------------------- Linux specifics


def test_ubuntu_esm_is_reported_as_extended_support():
    eol = judge(linux("ubuntu-20.04"))
    assert eol.extended_support == {"available": True, "until": date(2030, 4, 2), "name": "ESM"}
    assert eol.status == "eol"
    assert any("Expanded Security Maintenance (ESM)" in r for r in eol.reasons)
    supported = judge(linux("ubuntu-22.04"))
    assert supported.extended_support["until"] == date(2032, 4, 9)
    assert not any("ESM" in r for r in supported.reasons)


def test_extended_support_that_has_ended_is_not_available():
    result = judge(linux("ubuntu-20.04"), date(2030, 4, 3))   # the day after ESM ends
    assert result.extended_support["available"] is False
    assert result.extended_support["until"] == date(2030, 4, 2)


def test_stale_package_metadata_gives_unknown_not_supported():
    result = judge(linux("ubuntu-22.04"), pending_security_updates=None, metadata_fresh=False)
    assert result.status == "unknown"
    assert any("could not be checked" in r and "sudo apt update" in r for r in result.reasons)
    unreadable = judge(linux("rhel-9.2", version_id="9.8"), pending_security_updates=None,
                       metadata_fresh=None)
    assert unreadable.status == "unknown"
    assert any("could not be checked" in r and "dnf makecache" in r for r in unreadable.reasons)


def test_pending_security_updates_are_unpatched_even_with_stale_metadata():
    result = judge(linux("debian-13"), pending_security_updates=3, metadata_fresh=False)
    assert result.status == "unpatched"
    assert any("3 security updates are waiting" in r for r in result.reasons)


def test_last_update_age_limit_is_35_days():
    at_limit = datetime.combine(DATA_DATE - timedelta(days=35), time(23, 59))
    over = datetime.combine(DATA_DATE - timedelta(days=36), time(0, 1))
    assert judge(linux("debian-13"), last_update=at_limit).status == "supported"
    result = judge(linux("debian-13"), last_update=over)
    assert result.status == "unpatched"
    assert any("36 days ago" in r for r in result.reasons)


def test_pending_restart_and_older_running_kernel_are_unpatched():
    reboot = judge(linux("ubuntu-22.04"), pending_reboot=True)
    assert reboot.status == "unpatched" and any("restart" in r for r in reboot.reasons)
    # The Linux platform also sets pending_reboot for an old kernel: one reason, not two.
    both = judge(linux("ubuntu-22.04"), pending_reboot=True, running_kernel="6.8.0-40-generic")
    assert len([r for r in both.reasons if "restart" in r]) == 1
    # 91 < 101 numerically (a plain string compare would say the opposite)
    kernel = judge(linux("ubuntu-22.04"), running_kernel="5.15.0-91-generic",
                   newest_kernel="5.15.0-101-generic")
    assert kernel.status == "unpatched"
    assert any("5.15.0-91-generic" in r for r in kernel.reasons)
    rpm = judge(linux("rhel-9.2", version_id="9.8"), running_kernel="5.14.0-427.el9.x86_64",
                newest_kernel="5.14.0-427.13.1.el9_4.x86_64")
    assert rpm.status == "unpatched"
    newer_running = judge(linux("ubuntu-22.04"), running_kernel="6.8.0-50-generic",
                          newest_kernel="6.8.0-45-generic")
    assert newer_running.status == "supported"


def test_eol_wins_over_unpatched_and_every_reason_is_listed():
    result = judge(linux("centos-7"), pending_security_updates=12, pending_reboot=True)
    assert result.status == "eol"
    text = " ".join(result.reasons)
    assert "reached end of life" in text and "12 security updates" in text and "restart" in text


def test_point_release_only_where_version_id_carries_it():
    # Debian's VERSION_ID is "12"/"13": no point-release claim; with "13.2" there is one.
    assert judge(linux("debian-13")).status == "supported"
    behind = judge(linux("debian-13", version_id="13.2"))
    assert behind.status == "unpatched" and any("13.6" in r for r in behind.reasons)
    # Amazon Linux 2023's VERSION_ID is the cycle itself.
    assert judge(linux("amzn-2023")).latest_known == "2023.12.20260817.0"
    assert judge(linux("amzn-2023")).status == "supported"


# --------------------------------------------------------------------------- unknown


@pytest.mark.parametrize("os_info, why", [
    (linux("arch"), "does not know this OS"),
    (linux("linuxmint-21.3"), "codename virginia matches no release"),
    (linux("eurolinux-8.4"), "like rhel fedora centos"),
    (linux("ubuntu-22.04", version_id="27.04"), "Ubuntu has no release 27.04"),
    (linux("debian-13", version_id=""), "Debian has no release (version unknown)"),
    (OSInfo(family="linux"), "does not know this OS"),
], ids=["arch", "mint-not-an-ubuntu-version", "rhel-like-never-guessed", "future-ubuntu",
        "debian-testing", "nothing-known"])
def test_os_missing_from_the_data_is_unknown(os_info, why):
    result = judge(os_info)
    assert result.status == "unknown"
    assert (result.product, result.cycle, result.eol_date) == ("", "", None)
    assert why in result.reasons[0] and "check the vendor's end-of-life dates" in result.reasons[0]


def test_missing_os_with_pending_updates_is_still_unpatched():
    result = judge(linux("arch"), pending_security_updates=2)
    assert result.status == "unpatched"
    assert "not in jcdiag's lifecycle data" in result.reasons[0]


def test_centos_stream_is_told_from_centos_linux_by_name():
    stream8 = judge(linux("centos-stream-9", version_id="8", name="CentOS Stream 8"))
    linux8 = judge(linux("centos-7", version_id="8", name="CentOS Linux 8"))
    assert (stream8.product, stream8.eol_date) == ("centos-stream", date(2024, 5, 31))
    assert (linux8.product, linux8.eol_date) == ("centos", date(2021, 12, 31))


def test_derivative_mapped_by_codename_says_so():
    result = judge(linux("zorin-17"))
    assert "Zorin OS 17 is judged as Ubuntu 22.04" in result.reasons[0]


# --------------------------------------------------------------------------- data age


def test_data_older_than_180_days_gives_unknown():
    os_info = linux("ubuntu-22.04", version_id="24.04")
    last_good_day = DATA_DATE + timedelta(days=180)
    assert judge(os_info, last_good_day).status == "supported"
    stale = judge(os_info, last_good_day + timedelta(days=1))
    assert stale.status == "unknown"
    assert (stale.release, stale.patch) == ("unknown", "unknown")
    assert any("more than 180 days old" in r and "jcdiag lifecycle update" in r
               for r in stale.release_reasons)
    assert any("lifecycle data is dated 2026-08-22" in r for r in stale.patch_reasons)
    assert stale.cycle == "24.04"         # facts still shown for the engineer


def test_a_passed_eol_date_stays_eol_whatever_the_data_age():
    result = judge(linux("centos-7"), date(2028, 1, 1))
    assert (result.status, result.release) == ("eol", "eol")
    assert any("reached end of life on 2024-06-30" in r for r in result.release_reasons)
    ubuntu_2404 = judge(linux("ubuntu-22.04", version_id="24.04"), date(2031, 1, 1))
    assert (ubuntu_2404.status, ubuntu_2404.release, ubuntu_2404.eol_date) == (
        "eol", "eol", date(2029, 5, 31))


def test_stale_data_never_claims_behind_as_current():
    os_info = linux("ubuntu-22.04", version_id="24.04")
    as_of = DATA_DATE + timedelta(days=400)
    behind = verdict(os_info, fresh(as_of, os_info, pending_security_updates=4), as_of)
    assert (behind.release, behind.patch, behind.status) == ("unknown", "behind", "unpatched")


# --------------------------------------------------------------------------- two axes


@pytest.mark.parametrize("os_info, as_of, status, product, cycle, eol", PRODUCT_CASES)
def test_every_product_on_both_axes_fresh_and_stale(os_info, as_of, status, product, cycle, eol):
    """Release and patch are judged apart; the summary is the worst of them; a passed date
    stays eol on stale data; stale data never claims supported or current."""
    result = judge(os_info, as_of)
    assert result.release in lifecycle.RELEASE_STATES and result.patch in lifecycle.PATCH_STATES
    assert result.status == lifecycle.summary_status(result.release, result.patch) == status
    assert set(result.reasons) == set(result.release_reasons) | set(result.patch_reasons)
    passed = eol and as_of > date.fromisoformat(eol)
    if status == "eol":
        assert result.release == "eol"
    # A machine that cannot tell its patch state: the release verdict stands on its own.
    unknown_patch = verdict(os_info, PatchLevel(), as_of)
    assert unknown_patch.release == result.release
    assert unknown_patch.patch in ("unknown", "behind", "current")
    if os_info.family == "linux":
        assert unknown_patch.patch != "current" and unknown_patch.status != "supported"
    # The same machine judged on stale data (a year after the data's date).
    later = DATA_DATE + timedelta(days=365)
    stale = judge(os_info, later)
    if eol and later > date.fromisoformat(eol):
        assert stale.release == "eol" and stale.status == "eol"
    else:
        assert stale.release == "unknown"
    assert stale.patch in ("behind", "unknown")
    assert "supported" != stale.status
    if passed:
        assert result.release == "eol"


def test_release_known_and_patch_state_unknown_are_told_apart():
    """Ubuntu 22.04 with unreadable package metadata: release supported, patch unknown."""
    os_info = linux("ubuntu-22.04")
    result = verdict(os_info, fresh(DATA_DATE, os_info, pending_security_updates=None,
                                    metadata_fresh=None), DATA_DATE)
    assert (result.release, result.patch, result.status) == ("supported", "unknown", "unknown")
    assert any("supported until" in r for r in result.release_reasons)
    assert any("could not be checked" in r for r in result.patch_reasons)
    data = result.to_dict()
    assert (data["release"], data["patch"]) == ("supported", "unknown")
    assert data["release_reasons"] and data["patch_reasons"]


# --------------------------------------------------------------------------- output


def test_to_dict_is_json_ready():
    result = judge(linux("ubuntu-20.04"))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["status"] == "eol" and data["eol_date"] == "2025-05-31"
    assert data["extended_support"] == {"available": True, "until": "2030-04-02", "name": "ESM"}
    assert data["data_date"] == "2026-08-22" and data["latest_known"] == "20.04.6"
    assert set(data) >= {"status", "product", "cycle", "eol_date", "days_to_eol",
                         "extended_support", "latest_known", "reasons", "data_date"}


def test_as_of_may_be_a_datetime():
    result = verdict(linux("ubuntu-22.04"), fresh(DATA_DATE, linux("ubuntu-22.04")),
                     datetime(2026, 8, 22, 15, 0))
    assert result.status == "supported" and result.as_of == DATA_DATE


def test_every_status_is_a_known_one():
    statuses = {judge(p.values[0], p.values[1]).status for p in PRODUCT_CASES}
    assert statuses <= set(lifecycle.STATUSES)


# --------------------------------------------------------------------------- the table


def test_table_is_loaded_once_and_carries_date_source_and_licence():
    table = load_table()
    assert load_table() is table
    assert table["data_date"] == "2026-08-22"
    assert "endoflife.date" in table["source"]
    assert "Copyright 2020 endoflife.date contributors" in table["license"]
    notice = (REPO / "collector" / "data" / "LICENSE-endoflife-date.txt").read_text()
    assert "Permission is hereby granted" in notice and "endoflife.date contributors" in notice


def test_table_is_small():
    assert (REPO / "collector" / "data" / "lifecycle.json").stat().st_size < 200 * 1024


def test_build_script_reproduces_the_committed_table(tmp_path):
    pytest.importorskip("yaml")
    source = REPO.parent / "shared" / "lifecycle-source"
    if not source.is_dir():
        pytest.skip(f"{source} is not here")
    out = tmp_path / "lifecycle.json"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_lifecycle.py"),
                    "--source", str(source), "--out", str(out)], check=True, capture_output=True)
    data_dir = REPO / "collector" / "data"
    assert out.read_bytes() == (data_dir / "lifecycle.json").read_bytes()
    assert ((tmp_path / "LICENSE-endoflife-date.txt").read_bytes()
            == (data_dir / "LICENSE-endoflife-date.txt").read_bytes())


def _load_build_script(monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_lifecycle",
                                                  REPO / "scripts" / "build_lifecycle.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)   # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_build_script_reads_markdown_front_matter_and_refuses_unquoted_versions(tmp_path,
                                                                                monkeypatch):
    pytest.importorskip("yaml")
    build = _load_build_script(monkeypatch)
    (tmp_path / "LICENSE").write_text("Copyright 2020 endoflife.date contributors\n")
    (tmp_path / "demo.md").write_text("---\ntitle: Demo\nreleases:\n"
                                      "  - releaseCycle: \"1.10\"\n    releaseDate: 2020-01-01\n"
                                      "    eol: false\n---\n\n> Demo is a product.\n")
    product, entry = build.build_product(tmp_path / "demo.md")
    assert product == "demo" and entry["cycles"][0] == {
        "cycle": "1.10", "label": "Demo 1.10", "lts": False, "release_date": "2020-01-01",
        "eol": False}
    (tmp_path / "bad.yaml").write_text("title: Bad\nreleases:\n  - releaseCycle: 8.10\n"
                                       "    eol: 2020-01-01\n")
    with pytest.raises(build.SourceError, match="unquoted number"):
        build.build_product(tmp_path / "bad.yaml")
