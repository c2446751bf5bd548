"""Readers for Linux package databases and package-manager logs, all streaming.

``/var/lib/dpkg/status``, apt's package lists and the package logs can be tens of
megabytes on a long-lived machine: everything here reads line by line with a
bounded line length (compressed rotations included), keeps only the fields it
needs, and never holds a whole file.  Timestamps come back as naive datetimes:
the wall-clock time the log wrote, converted to UTC where the log names an offset.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable, Iterator, Optional

from .base import open_fact
from .pkgversion import debian_compare

MAX_LINE = 64 * 1024
# Compression suffixes of apt lists and rotated logs that the standard library reads.
# Decompressors over an already opened binary file (see base.open_fact).
READABLE_SUFFIXES = {"": lambda fh: fh, ".gz": lambda fh: gzip.GzipFile(fileobj=fh),
                     ".xz": lzma.LZMAFile, ".bz2": bz2.BZ2File}
UNREADABLE_SUFFIXES = (".lz4", ".zst")


def compression_of(path: Path) -> str:
    """``.gz``/``.xz``/``.bz2``/``.lz4``/``.zst`` when ``path`` is compressed, else ``""``."""
    for suffix in (*READABLE_SUFFIXES, *UNREADABLE_SUFFIXES):
        if suffix and path.name.endswith(suffix):
            return suffix
    return ""


def iter_lines(path: Path) -> Iterator[str]:
    """Lines of a plain or compressed text file, without line ends.

    Lines longer than ``MAX_LINE`` arrive in pieces, so memory stays bounded.  A
    missing file yields nothing; a truncated or corrupt compressed file yields
    what could be read (a rotation cut short by a crash is still evidence).
    """
    opener = READABLE_SUFFIXES.get(compression_of(path))
    if opener is None:
        return
    try:
        with open_fact(path) as raw, io.TextIOWrapper(opener(raw), encoding="utf-8",
                                                      errors="replace") as fh:
            for line in iter(lambda: fh.readline(MAX_LINE), ""):
                yield line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return


def iter_stanzas(lines: Iterable[str], fields: frozenset[str]) -> Iterator[dict[str, str]]:
    """deb822 paragraphs (dpkg status, apt ``Packages``) with only ``fields`` kept.

    Continuation lines (long descriptions, conffiles) are skipped, so a stanza
    costs a few short strings however large the original is.
    """
    stanza: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            if stanza:
                yield stanza
                stanza = {}
            continue
        if line[0] in " \t" or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if key in fields:
            stanza[key] = value.strip()
    if stanza:
        yield stanza


# --------------------------------------------------------------------------- dpkg / apt


def dpkg_installed(status: Path) -> dict[tuple[str, str], str]:
    """``{(package, architecture): version}`` of every installed package."""
    installed = {}
    for stanza in iter_stanzas(iter_lines(status), frozenset({"Package", "Status", "Architecture", "Version"})):
        state = stanza.get("Status", "").split()
        if len(state) == 3 and state[2] == "installed" and "Version" in stanza:
            installed[(stanza.get("Package", ""), stanza.get("Architecture", ""))] = stanza["Version"]
    return installed


def dpkg_native_arch(status: Path) -> str:
    """The architecture dpkg itself is built for, which is the system's native one."""
    for stanza in iter_stanzas(iter_lines(status), frozenset({"Package", "Architecture"})):
        if stanza.get("Package") == "dpkg":
            return stanza.get("Architecture", "")
    return ""


@dataclass(frozen=True)
class PendingUpdate:
    """One installed package for which a newer version is published."""

    name: str
    arch: str
    installed: str
    candidate: str


def newer_in_lists(installed: dict[tuple[str, str], str], lists: Iterable[Path]) -> list[PendingUpdate]:
    """Installed packages that one of the apt ``Packages`` lists offers a newer version of.

    Given the security pockets' lists, this is the set of pending security
    updates: a package whose installed version is older than the version the
    security archive publishes is missing that fix, whichever pocket would
    eventually deliver the upgrade.
    """
    newest: dict[tuple[str, str], str] = {}
    for path in lists:
        for stanza in iter_stanzas(iter_lines(path), frozenset({"Package", "Architecture", "Version"})):
            key = (stanza.get("Package", ""), stanza.get("Architecture", ""))
            current = installed.get(key)
            offered = stanza.get("Version")
            if current is None or not offered or debian_compare(offered, current) <= 0:
                continue
            if key not in newest or debian_compare(offered, newest[key]) > 0:
                newest[key] = offered
    return [PendingUpdate(name, arch, installed[(name, arch)], version)
            for (name, arch), version in sorted(newest.items())]


_APT_CHANGES = ("Install:", "Upgrade:")


def apt_history_newest(lines: Iterable[str]) -> Optional[datetime]:
    """End time of the newest apt history entry that installed or upgraded packages
    (entries that only removed packages are not updates)."""
    newest = None
    changed = False
    for line in lines:
        if line.startswith("Start-Date:"):
            changed = False
        elif line.startswith(_APT_CHANGES):
            changed = True
        elif line.startswith("End-Date:") and changed:
            stamp = _parse_stamp(" ".join(line.partition(":")[2].split()), "%Y-%m-%d %H:%M:%S")
            newest = _later(newest, stamp)
    return newest


def dpkg_log_newest(lines: Iterable[str]) -> Optional[datetime]:
    """Time of the newest ``install``/``upgrade`` action in ``dpkg.log``."""
    newest = None
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in ("install", "upgrade"):
            newest = _later(newest, _parse_stamp(f"{parts[0]} {parts[1]}", "%Y-%m-%d %H:%M:%S"))
    return newest


def apt_simulation_security(text: str) -> list[str]:
    """Packages that ``apt-get -s dist-upgrade`` would take from a ``-security`` pocket.

    ``Inst libssl3 [3.0.2-0ubuntu1.12] (3.0.2-0ubuntu1.15 Ubuntu:22.04/jammy-security [amd64])``
    """
    names = []
    for line in text.splitlines():
        if line.startswith("Inst ") and "-security" in line.partition("(")[2]:
            name = line.split()[1]
            if name not in names:
                names.append(name)
    return names


# --------------------------------------------------------------------------- rpm family

_ISO_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(Z|[+-]\d\d(?::?\d\d)?)?$")
_DNF_CHANGES = ("Installed:", "Install:", "Upgrade:", "Upgraded:")


def dnf_rpm_log_newest(lines: Iterable[str]) -> Optional[datetime]:
    """Time of the newest install or upgrade in ``dnf.rpm.log``:
    ``2024-03-05T10:12:44+0000 SUBDEBUG Upgrade: openssl-libs-1:3.0.7-27.el9.x86_64``."""
    newest = None
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[2] in _DNF_CHANGES:
            newest = _later(newest, _parse_iso(parts[0]))
    return newest


def yum_log_newest(lines: Iterable[str], year: int, month_written: int) -> Optional[datetime]:
    """Time of the newest install or update in ``yum.log`` (``Mar 05 10:12:44 Updated: ...``).

    yum writes no year: entries from months after ``month_written`` (the month the
    file was last written) belong to the year before ``year``.
    """
    newest = None
    for line in lines:
        parts = line.split(" ", 4)
        if len(parts) >= 4 and parts[3] in ("Installed:", "Updated:"):
            stamp = _parse_stamp(" ".join(parts[:3]), "%b %d %H:%M:%S")
            if stamp is not None:
                stamp = stamp.replace(year=year if stamp.month <= month_written else year - 1)
            newest = _later(newest, stamp)
    return newest


def zypp_history_newest(lines: Iterable[str]) -> Optional[datetime]:
    """Time of the newest package install in ``/var/log/zypp/history``
    (``2024-03-05 10:12:44|install|openssl-3|3.1.4-150600.5.15.1|x86_64|...``);
    zypper records upgrades as installs of the new version."""
    newest = None
    for line in lines:
        if line.startswith("#"):
            continue
        fields = line.split("|")
        if len(fields) > 2 and fields[1].strip() == "install":
            newest = _later(newest, _parse_stamp(fields[0], "%Y-%m-%d %H:%M:%S"))
    return newest


def dnf_security_packages(text: str) -> Optional[list[str]]:
    """Packages named by ``dnf updateinfo list --security`` (dnf 4 columns:
    ``RHSA-2024:4623 Important/Sec.  openssl-1:3.0.7-27.el9.x86_64``), each once.

    None when the output has lines but none in that format (an unknown dnf), so
    a format change reads as "unknown", never as "no updates".
    """
    packages: list[str] = []
    other_lines = 0
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) == 3 and tokens[1].endswith("Sec."):
            if tokens[2] not in packages:
                packages.append(tokens[2])
        elif tokens:
            other_lines += 1
    if other_lines and not packages:
        return None
    return packages


# --------------------------------------------------------------------------- helpers


def _parse_stamp(text: str, fmt: str) -> Optional[datetime]:
    try:
        return datetime.strptime(text.strip(), fmt)
    except ValueError:
        return None


def _parse_iso(text: str) -> Optional[datetime]:
    match = _ISO_STAMP.match(text)
    if not match:
        return None
    stamp = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    offset = match.group(2)
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) >= 4 else 0)
        stamp -= sign * timedelta(minutes=minutes)
    return stamp


def _later(current: Optional[datetime], candidate: Optional[datetime]) -> Optional[datetime]:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current
