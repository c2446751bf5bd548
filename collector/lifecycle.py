"""End-of-Life and patch verdict: is this OS supported, end of life, or unpatched?

Support's policy is to ask for an update before helping an End-of-Life or
unpatched system, so this verdict comes first in every bundle and in
``jcdiag check``.  It is judged offline from the bundled, dated lifecycle table
(``data/lifecycle.json``, built from endoflife.date by ``scripts/build_lifecycle.py``)
plus the platform's facts (:class:`~platforms.base.OSInfo`,
:class:`~platforms.base.PatchLevel`).

Two questions, answered apart so an engineer can tell "release unknown" from
"release supported, patch state unknown":

* ``release`` -- ``eol`` once the cycle's end-of-life date has passed (on the date
  itself the OS is still supported; from the day after it is not), whatever the
  data's age: a passed date stays passed.  ``unknown`` when the OS is not in the data
  (jcdiag never guesses a derivative's lifecycle) or when the data is more than 180
  days older than ``as_of`` and the date has not passed.  ``supported`` otherwise.
  Paid or community extended support (ESU, ESM, ELS, LTSS, Debian LTS) is *reported*,
  never assumed active.
* ``patch`` -- ``behind`` when the machine is behind the newest point release the
  data knows (macOS, and Linux where ``VERSION_ID`` carries the point release),
  security updates wait, the last successful update is more than 35 days old, or a
  restart is pending (or the running kernel is older than the newest installed one:
  one reason for both, one restart).  ``unknown`` when the patch state could not be
  checked (Linux package metadata stale or unreadable, Windows with no update
  history) or when ``current`` would rest on stale data.  ``current`` otherwise.

``status`` sums them up, worst first: ``eol`` (release), ``unpatched`` (patch
behind), ``unknown`` (either axis), ``supported``.  A claim of ``supported`` or
``current`` needs lifecycle data at most 180 days old.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Optional

from platforms.base import OSInfo, PatchLevel
from platforms.pkgversion import rpm_compare

STATUSES = ("supported", "eol", "unpatched", "unknown")
RELEASE_STATES = ("supported", "eol", "unknown")
PATCH_STATES = ("current", "behind", "unknown")
WORST_FIRST = ("eol", "unpatched", "unknown")
UPDATE_MAX_AGE_DAYS = 35      # older last successful update: unpatched
DATA_MAX_AGE_DAYS = 180       # older lifecycle data: unknown
EOL_SOON_DAYS = 90            # a supported OS this close to EOL gets a "plan it" reason

# os-release ID (and jcdiag's ids for macOS / Windows) -> endoflife.date product.
PRODUCT_BY_ID = {
    "ubuntu": "ubuntu", "debian": "debian", "rhel": "rhel", "centos": "centos",
    "centos-stream": "centos-stream", "rocky": "rocky-linux", "almalinux": "almalinux",
    "ol": "oracle-linux", "amzn": "amazon-linux", "fedora": "fedora", "sles": "sles",
    "opensuse-leap": "opensuse", "opensuse": "opensuse", "pop": "pop-os", "macos": "macos",
}
# ID_LIKE bases whose VERSION_CODENAME names the package base a derivative runs on:
# a derivative saying VERSION_CODENAME=jammy runs Ubuntu 22.04's archive and so
# shares its support window.  RHEL/Fedora/SUSE-likes are never mapped: CentOS
# Linux 8 (ID_LIKE="rhel fedora") ended in 2021 while RHEL 8 runs to 2029.
CODENAME_BASES = ("ubuntu", "debian")
# SLES 15 GA says VERSION_ID="15"; the data calls that cycle "15.0".
ZERO_MINOR_PRODUCTS = ("sles",)

# Windows EditionID -> the edition family of the lifecycle data's cycles.
# Microsoft's "Home and Pro" lifecycle covers Home, Pro, Pro Education, Pro for
# Workstations and SE; "Enterprise and Education" covers Enterprise, Education,
# IoT Enterprise and Enterprise multi-session (ServerRdsh).
WINDOWS_EDITION_FAMILY = {
    **dict.fromkeys(("core", "coren", "coresinglelanguage", "corecountryspecific",
                     "professional", "professionaln", "professionaleducation",
                     "professionaleducationn", "professionalworkstation",
                     "professionalworkstationn", "professionalsinglelanguage",
                     "professionalcountryspecific", "cloudedition", "cloudeditionn"), "w"),
    **dict.fromkeys(("enterprise", "enterprisen", "enterpriseg", "enterprisegn", "education",
                     "educationn", "iotenterprise", "iotenterprisek", "serverrdsh"), "e"),
    **dict.fromkeys(("enterprises", "enterprisesn"), "e-lts"),
    **dict.fromkeys(("iotenterprises", "iotenterprisesk"), "iot-lts"),
}
# Which cycles serve an edition family, best first.  "all" cycles (10 22H2, 8.1)
# cover every edition.  IoT Enterprise LTSC falls back to the Enterprise LTSC
# cycle where the data has no IoT one (2015/2016/2019): Microsoft gave both the
# same dates then, and the data's cycle links to the table of both editions.
WINDOWS_CYCLE_PREFERENCE = {
    "w": ("w", "all"), "e": ("e", "all"), "e-lts": ("e-lts",), "iot-lts": ("iot-lts", "e-lts"),
}
WINDOWS_11_FIRST_BUILD = 22000

UPDATE_HINTS = {
    "ubuntu": "sudo apt update && sudo apt upgrade", "debian": "sudo apt update && sudo apt upgrade",
    "pop-os": "sudo apt update && sudo apt upgrade",
    "rhel": "sudo dnf upgrade", "rocky-linux": "sudo dnf upgrade", "almalinux": "sudo dnf upgrade",
    "oracle-linux": "sudo dnf upgrade", "fedora": "sudo dnf upgrade",
    "centos-stream": "sudo dnf upgrade", "centos": "sudo yum update",
    "amazon-linux": "sudo dnf upgrade (sudo yum update on Amazon Linux 2)",
    "sles": "sudo zypper patch", "opensuse": "sudo zypper patch",
    "macos": "System Settings > General > Software Update",
    "windows": "Settings > Windows Update", "windows-server": "Windows Update",
}
METADATA_HINTS = {
    "ubuntu": "sudo apt update", "debian": "sudo apt update", "pop-os": "sudo apt update",
    "sles": "sudo zypper refresh", "opensuse": "sudo zypper refresh",
    "centos": "sudo yum makecache", "amazon-linux": "sudo dnf makecache (yum on Amazon Linux 2)",
    **dict.fromkeys(("rhel", "rocky-linux", "almalinux", "oracle-linux", "fedora",
                     "centos-stream"), "sudo dnf makecache"),
}


@dataclass
class Verdict:
    """The lifecycle verdict of one system at one date (``as_of``).

    ``product`` is the endoflife.date product id (``ubuntu``, ``windows``) and
    ``cycle`` its release cycle id (``22.04``, ``11-23h2-e``); ``label`` names both
    for people.  ``extended_support`` says whether paid/extended support exists for
    the cycle and until when; it is never taken to be active.
    """

    status: str
    release: str = "unknown"           # supported | eol | unknown
    patch: str = "unknown"             # current | behind | unknown
    release_reasons: list[str] = field(default_factory=list)
    patch_reasons: list[str] = field(default_factory=list)
    product: str = ""
    cycle: str = ""
    label: str = ""
    eol_date: Optional[date] = None
    days_to_eol: Optional[int] = None
    extended_support: dict[str, Any] = field(
        default_factory=lambda: {"available": False, "until": None, "name": None})
    latest_known: str = ""
    installed: str = ""                # the installed (point) release, beside latest_known
    reasons: list[str] = field(default_factory=list)
    data_date: Optional[date] = None
    as_of: Optional[date] = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: dates as ISO strings."""
        until = self.extended_support.get("until")
        return {
            "status": self.status, "release": self.release, "patch": self.patch,
            "release_reasons": list(self.release_reasons), "patch_reasons": list(self.patch_reasons),
            "product": self.product, "cycle": self.cycle,
            "label": self.label, "eol_date": _iso(self.eol_date), "days_to_eol": self.days_to_eol,
            "extended_support": {**self.extended_support, "until": _iso(until)},
            "latest_known": self.latest_known, "installed": self.installed, "reasons": list(self.reasons),
            "data_date": _iso(self.data_date), "as_of": _iso(self.as_of),
        }


@dataclass(frozen=True)
class _Match:
    """The table row an OS maps to."""

    product: str
    entry: dict[str, Any] = field(repr=False)
    cycle: dict[str, Any] = field(repr=False)
    via: str = ""          # how a derivative was mapped to its base, for the reasons


class _NoMatch(Exception):
    """The OS cannot be mapped to a cycle; the message is the admin's reason."""


# --------------------------------------------------------------------------- table


def load_table() -> dict[str, Any]:
    """The table to judge with: the copy ``jcdiag lifecycle update`` stored on this machine
    (validated on every change) when its data is newer than the bundled one, else the
    bundled one (:mod:`collector.lifecycle_data`).  Do not mutate it."""
    from .lifecycle_data import effective_table
    return effective_table()


# --------------------------------------------------------------------------- verdict


def verdict(os_info: OSInfo, patch: PatchLevel, as_of: date,
            table: Optional[dict[str, Any]] = None) -> Verdict:
    """Judge ``os_info``/``patch`` on ``as_of`` against ``table`` (default: the bundled one)."""
    table = table if table is not None else load_table()
    as_of = _as_date(as_of)
    data_date = date.fromisoformat(table["data_date"])
    result = Verdict(status="supported", data_date=data_date, as_of=as_of,
                     installed=_installed(os_info, patch))
    release: list[tuple[str, str]] = []           # (release state it argues for, reason)
    patch_found: list[tuple[str, str]] = []       # (patch state it argues for, reason)

    stale = as_of > data_date + timedelta(days=DATA_MAX_AGE_DAYS)
    stale_reason = (f"jcdiag's lifecycle data is dated {data_date}, more than {DATA_MAX_AGE_DAYS} "
                    f"days before {as_of}: dates and releases may have changed since; refresh it "
                    "with `jcdiag lifecycle update` (or update jcdiag) to judge this system.")
    try:
        match = _find_cycle(os_info, table)
    except _NoMatch as exc:
        match = None
        release.append(("unknown", str(exc)))
    if match is not None:
        if match.via:
            release.append(("supported", match.via))
        _describe_cycle(result, match, as_of)
        release.extend(_lifecycle_findings(result, match, as_of, stale))
        patch_found.extend(_point_release_findings(os_info, patch, match))
    product = match.product if match else PRODUCT_BY_ID.get(os_info.id, os_info.id)
    patch_found.extend(_patch_findings(os_info, patch, product, as_of))

    result.release = _worst(release, ("eol", "unknown"), "supported")
    result.patch = _worst(patch_found, ("behind", "unknown"), "current")
    if stale and result.release == "supported":
        result.release = "unknown"
        release.append(("unknown", stale_reason))
    if stale and result.patch == "current":
        result.patch = "unknown"
        patch_found.append(("unknown", stale_reason))
    result.release_reasons = [r for _, r in release]
    result.patch_reasons = [r for _, r in patch_found]
    result.reasons = result.release_reasons + [r for r in result.patch_reasons
                                               if r not in result.release_reasons]
    result.status = summary_status(result.release, result.patch)
    return result


def _installed(os_info: OSInfo, patch: PatchLevel) -> str:
    """The installed release as precisely as the OS says it (Debian 12.11, macOS 14.4.1,
    Windows build.UBR), to show beside the newest the data knows."""
    if os_info.id in ("windows", "windows-server") and os_info.build:
        return f"{os_info.build}.{patch.ubr}" if patch.ubr is not None else os_info.build
    return os_info.point_release or os_info.version_id


def summary_status(release: str, patch: str) -> str:
    """The one-word summary of both axes, worst first: eol > unpatched > unknown > supported."""
    if release == "eol":
        return "eol"
    if patch == "behind":
        return "unpatched"
    if "unknown" in (release, patch):
        return "unknown"
    return "supported"


def _worst(found: list[tuple[str, str]], worst_first: tuple[str, ...], otherwise: str) -> str:
    return next((s for s in worst_first if any(f[0] == s for f in found)), otherwise)


def _describe_cycle(result: Verdict, match: _Match, as_of: date) -> None:
    """Fill the verdict's facts about the matched cycle (dates, latest, extended support)."""
    cycle, entry = match.cycle, match.entry
    result.product, result.cycle, result.label = match.product, cycle["cycle"], cycle["label"]
    eol = cycle.get("eol")
    if isinstance(eol, str):
        result.eol_date = date.fromisoformat(eol)
        result.days_to_eol = (result.eol_date - as_of).days
    result.latest_known = cycle.get("latest", "")
    extended = cycle.get("extended_support")
    until = date.fromisoformat(extended) if isinstance(extended, str) else None
    result.extended_support = {
        "available": bool(extended is True or (until is not None and until >= as_of)),
        "until": until,
        "name": entry.get("extended_support_name"),
    }


def _lifecycle_findings(result: Verdict, match: _Match, as_of: date,
                        stale: bool) -> list[tuple[str, str]]:
    """End of life, near it, or supported; and extended support when past EOL.  A passed
    date is end of life whatever the data's age; with ``stale`` data a date still ahead
    may have moved, so the days left are given as the data says them, not promised."""
    label, eol = result.label, match.cycle.get("eol")
    if eol is True or (result.eol_date is not None and as_of > result.eol_date):
        when = (f"on {result.eol_date} ({-result.days_to_eol} days ago)"
                if result.eol_date else "(the data gives no date)")
        found = [("eol", f"{label} reached end of life {when}: upgrade to a supported release "
                         "before support can proceed.")]
        ext = result.extended_support
        if ext["available"]:
            title = match.entry.get("extended_support_title") or ext["name"]
            until = f" until {ext['until']}" if ext["until"] else ""
            found.append(("eol", f"{title} ({ext['name']}) is offered for {label}{until}; jcdiag "
                                 "cannot see whether this machine is enrolled, so it is not counted "
                                 "as supported: upgrade, or show support proof of enrollment."))
        return found
    if stale:
        when = f" on {result.eol_date}" if result.eol_date else ""
        return [("unknown", f"By jcdiag's lifecycle data {label} reaches end of life{when}, but that "
                            f"data is more than {DATA_MAX_AGE_DAYS} days old: refresh it with `jcdiag "
                            "lifecycle update` (or confirm the date with the vendor).")]
    if result.eol_date is None:
        return [("supported", f"{label} has no announced end-of-life date: no action needed.")]
    days = result.days_to_eol
    if days <= EOL_SOON_DAYS:
        return [("supported", f"{label} reaches end of life on {result.eol_date} (in {days} days): "
                              "plan the upgrade to a newer release now.")]
    return [("supported", f"{label} is supported until {result.eol_date} ({days} days left): "
                          "no action needed for the release.")]


def _point_release_findings(os_info: OSInfo, patch: PatchLevel,
                            match: _Match) -> list[tuple[str, str]]:
    """Behind the newest point release the data knows ("9.2" vs "9.8", "14.4.1" vs
    "14.8.9") -- only where the OS's version carries the point release."""
    if match.product in ("windows", "windows-server"):
        return _windows_build_findings(os_info, patch, match)
    running = _numeric(os_info.point_release or os_info.version_id)
    latest = _numeric(match.cycle.get("latest", ""))
    cycle_parts = len(match.cycle["cycle"].split("."))
    if running is None or latest is None or len(running) <= cycle_parts:
        return []
    width = max(len(running), len(latest))
    if _pad(running, width) >= _pad(latest, width):
        return []
    hint = UPDATE_HINTS.get(match.product, "the system's updater")
    return [("behind", f"{match.cycle['label']} is at {os_info.point_release or os_info.version_id}, behind the newest "
                          f"release {match.cycle['latest']}: install the updates ({hint}).")]


def _windows_build_findings(os_info: OSInfo, patch: PatchLevel,
                            match: _Match) -> list[tuple[str, str]]:
    """Behind the data's build.UBR, when the data carries a UBR (endoflife.date's
    Windows data gives the build only, so usually the update age decides)."""
    latest_ubr = match.cycle.get("ubr")
    if latest_ubr is None or patch.ubr is None or patch.ubr >= latest_ubr:
        return []
    return [("behind", f"{match.cycle['label']} is at build {_windows_build(os_info)}."
                          f"{patch.ubr}, behind {match.cycle['latest']}: install the latest "
                          "cumulative update (Windows Update).")]


# --------------------------------------------------------------------------- patch state


def _patch_findings(os_info: OSInfo, patch: PatchLevel, product: str,
                    as_of: date) -> list[tuple[str, str]]:
    """What the machine itself says about its updates, whatever the table knows."""
    found: list[tuple[str, str]] = []
    hint = UPDATE_HINTS.get(product, "the system's updater")
    pending = patch.pending_security_updates
    if pending:
        found.append(("behind", f"{pending} security update{'s are' if pending > 1 else ' is'} "
                                   f"waiting: install {'them' if pending > 1 else 'it'} ({hint}) "
                                   "and restart if asked."))
    elif os_info.family == "linux" and (pending is None or patch.metadata_fresh is False):
        why = "the package metadata is stale" if patch.metadata_fresh is False \
            else "the package metadata could not be read"
        refresh = METADATA_HINTS.get(product, "the package manager's refresh command")
        found.append(("unknown", f"Pending security updates could not be checked ({why}): "
                                 f"refresh it ({refresh}) and run jcdiag check again."))

    last = _last_update(os_info, patch)
    if last is not None and last < as_of - timedelta(days=UPDATE_MAX_AGE_DAYS):
        found.append(("behind", f"The last successful update was on {last} "
                                   f"({(as_of - last).days} days ago, over {UPDATE_MAX_AGE_DAYS}): "
                                   f"install the latest updates ({hint})."))
    elif last is None and os_info.family == "windows":
        found.append(("unknown", "jcdiag could not tell when updates were last installed (no update "
                                 "date or hotfix dates found): run Windows Update, then run jcdiag "
                                 "check again."))

    # Kernel releases are ordered as the Linux platform orders them (rpmvercmp).
    running, newest = patch.running_kernel, patch.newest_kernel
    if running and newest and rpm_compare(running, newest) < 0:
        found.append(("behind", f"The running kernel {running} is older than the installed "
                                   f"{newest}: restart the machine to run it."))
    elif patch.pending_reboot:
        found.append(("behind", "A restart is pending to finish installing updates: restart "
                                   "the machine."))
    return found


def _last_update(os_info: OSInfo, patch: PatchLevel) -> Optional[date]:
    """The newest successful update; on Windows the newest hotfix date stands in."""
    candidates = [patch.last_update] if patch.last_update else []
    if os_info.family == "windows":
        candidates += [h.installed_on for h in patch.hotfixes if h.installed_on]
    return max((_as_date(c) for c in candidates), default=None)


# --------------------------------------------------------------------------- matching


def _find_cycle(os_info: OSInfo, table: dict[str, Any]) -> _Match:
    """The cycle ``os_info`` belongs to, or :class:`_NoMatch` with the reason."""
    if os_info.family == "windows" or os_info.id in ("windows", "windows-server"):
        return _find_windows(os_info, table)
    product = _product_for(os_info)
    if product is not None:
        entry = _product_entry(table, product, os_info)
        cycle = _cycle_by_version(entry, product, os_info.version_id)
        if cycle is None:
            raise _NoMatch(_not_in_data(os_info, table, f"{entry['name']} has no release "
                                                        f"{os_info.version_id or '(version unknown)'}"))
        return _Match(product, entry, cycle)
    return _find_by_codename(os_info, table)


def _product_for(os_info: OSInfo) -> Optional[str]:
    """The product of a known ID.  ``ID=centos`` is both CentOS Linux and CentOS
    Stream: only the name tells them apart."""
    product = PRODUCT_BY_ID.get(os_info.id)
    if product == "centos" and "stream" in os_info.name.lower():
        return "centos-stream"
    return product


def _product_entry(table: dict[str, Any], product: str, os_info: OSInfo) -> dict[str, Any]:
    entry = table["products"].get(product)
    if entry is None:
        raise _NoMatch(_not_in_data(os_info, table, f"the data has no {product} product"))
    return entry


def _cycle_by_version(entry: dict[str, Any], product: str,
                      version_id: str) -> Optional[dict[str, Any]]:
    """The cycle whose id is the longest dotted prefix of ``version_id``:
    "22.04" -> 22.04, "9.3" -> 9, "14.4.1" -> 14, "10.15.7" -> 10.15."""
    parts = version_id.split(".") if version_id else []
    candidates = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
    if product in ZERO_MINOR_PRODUCTS and len(parts) == 1:
        candidates.append(f"{parts[0]}.0")
    by_id = {c["cycle"]: c for c in entry["cycles"]}
    return next((by_id[c] for c in candidates if c in by_id), None)


def _find_by_codename(os_info: OSInfo, table: dict[str, Any]) -> _Match:
    """A derivative whose VERSION_CODENAME is its Ubuntu/Debian base's codename
    (e.g. Zorin OS 17: jammy) shares that base's support; anything else is unknown."""
    codename = os_info.codename.strip().lower()
    bases = [like for like in os_info.id_like if like in CODENAME_BASES and like in table["products"]]
    for base in bases if codename else []:
        entry = table["products"][base]
        for cycle in entry["cycles"]:
            if cycle.get("codename", "").split(" ")[0].lower() == codename:
                return _Match(base, entry, cycle, via=(
                    f"{os_info.name or os_info.id} is judged as {cycle['label']}, the release "
                    f"whose codename ({os_info.codename}) it runs on: confirm with its vendor that "
                    f"it follows {entry['name']}'s support dates."))
    if not os_info.id_like:
        raise _NoMatch(_not_in_data(os_info, table, "jcdiag does not know this OS"))
    seen = f"version {os_info.version_id or '?'}" + (
        f" / codename {os_info.codename}" if os_info.codename else "")
    raise _NoMatch(_not_in_data(os_info, table, f"it is like {' '.join(os_info.id_like)}, but its "
                                                f"{seen} matches no release of those, and a "
                                                "derivative's support can differ from its base's"))


def _find_windows(os_info: OSInfo, table: dict[str, Any]) -> _Match:
    build = _windows_build(os_info)
    if build is None:
        raise _NoMatch("The Windows build number is unknown, so jcdiag cannot tell which Windows "
                       "release this is: check CurrentBuild in the registry and run jcdiag check again.")
    if _is_windows_server(os_info):
        return _find_windows_server(os_info, table, build)
    entry = _product_entry(table, "windows", os_info)
    family = WINDOWS_EDITION_FAMILY.get(os_info.edition.lower())
    if family is None:
        raise _NoMatch(_not_in_data(os_info, table, f"its edition ({os_info.edition or 'unknown'}) "
                                                    "is not one jcdiag can place in Microsoft's "
                                                    "lifecycle (Home/Pro, Enterprise/Education, LTSC)"))
    # The build decides the release (Windows 11 is build >= 22000 whatever
    # ProductName says); DisplayVersion names it when the data lacks the build.
    releases = {c["release"] for c in entry["cycles"] if c.get("build") == build}
    if not releases and re.fullmatch(r"\d{2}[Hh]\d|\d{4}", os_info.version or ""):
        major = "11" if build >= WINDOWS_11_FIRST_BUILD else "10"
        releases = {f"{major}-{os_info.version.lower()}"}
    for wanted in WINDOWS_CYCLE_PREFERENCE[family]:
        found = [c for c in entry["cycles"] if c["release"] in releases and c["editions"] == wanted]
        if len(found) == 1:
            return _Match("windows", entry, found[0])
    raise _NoMatch(_not_in_data(os_info, table, f"the data has no {os_info.edition} cycle for "
                                                f"build {build}"))


def _find_windows_server(os_info: OSInfo, table: dict[str, Any], build: int) -> _Match:
    """Windows Server by build; one build can be both an LTSC and a semi-annual
    release (17763: 2019 and 1809), told apart by ProductName: "Windows Server 2019
    Datacenter" names its year, the semi-annual "Windows Server Datacenter" none."""
    entry = _product_entry(table, "windows-server", os_info)
    found = [c for c in entry["cycles"] if c.get("build") == build]
    if len(found) > 1:
        named = [c for c in found if c["lts"] and c["cycle"][:4] in os_info.name]
        sac_name = os_info.name and not re.search(r"\b20\d\d\b", os_info.name)
        found = named or ([c for c in found if not c["lts"]] if sac_name else [])
    if len(found) != 1:
        raise _NoMatch(_not_in_data(os_info, table, f"build {build} is not exactly one Windows "
                                                    "Server release in the data"))
    return _Match("windows-server", entry, found[0])


def _is_windows_server(os_info: OSInfo) -> bool:
    edition = os_info.edition.lower()
    return (os_info.id == "windows-server" or os_info.installation_type.lower().startswith("server")
            or (edition.startswith("server") and edition != "serverrdsh"))


def _windows_build(os_info: OSInfo) -> Optional[int]:
    """CurrentBuild, else the third part of ``10.0.22631``."""
    if os_info.build.isdigit():
        return int(os_info.build)
    parts = os_info.version_id.split(".")
    return int(parts[2]) if len(parts) >= 3 and parts[2].isdigit() else None


def _not_in_data(os_info: OSInfo, table: dict[str, Any], why: str) -> str:
    name = os_info.name or " ".join(x for x in (os_info.id, os_info.version_id) if x) or "This OS"
    return (f"{name} is not in jcdiag's lifecycle data (dated {table['data_date']}): {why}. "
            "jcdiag cannot tell whether it is supported: check the vendor's end-of-life dates, "
            "or update jcdiag.")


# --------------------------------------------------------------------------- helpers


def _numeric(version: str) -> Optional[tuple[int, ...]]:
    """``"9.3"`` -> (9, 3); anything not purely dotted digits -> None."""
    if not re.fullmatch(r"\d+(\.\d+)*", version or ""):
        return None
    return tuple(int(p) for p in version.split("."))


def _pad(version: tuple[int, ...], width: int) -> tuple[int, ...]:
    return version + (0,) * (width - len(version))


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _iso(value: Optional[date]) -> Optional[str]:
    return value.isoformat() if value else None

