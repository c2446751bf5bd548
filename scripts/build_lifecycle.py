#!/usr/bin/env python3
"""Build ``collector/data/lifecycle.json`` from endoflife.date release data.

Why a build step: the collector must judge End of Life offline, on any endpoint,
without PyYAML, so the YAML front matter of endoflife.date's product pages is
turned once into a small JSON table that ships inside the package.  The output
is deterministic (sorted keys, cycles newest first, one cycle per line): running
this script again on the same source gives the same bytes, which a test checks.

The table records the date of the data (``--data-date``, default the date of the
snapshot in ``../shared/lifecycle-source``: 2026-08-22).  The collector refuses to
judge with data older than 180 days, so bump it whenever the source is refreshed.

endoflife.date is MIT-licensed: the notice is copied beside the table
(``LICENSE-endoflife-date.txt``) and embedded in the JSON, as the licence asks.

Usage::

    python scripts/build_lifecycle.py [--source DIR] [--out FILE] [--data-date YYYY-MM-DD]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "lifecycle-source"
DEFAULT_OUT = REPO / "collector" / "data" / "lifecycle.json"
DEFAULT_DATA_DATE = "2026-08-22"   # the snapshot date of ../shared/lifecycle-source
LICENSE_NAME = "LICENSE-endoflife-date.txt"
SCHEMA = 1


@dataclass(frozen=True)
class ProductSpec:
    """What the source does not say the way jcdiag needs it: a short name for
    sentences, and the usual short name of the paid/extended support offer."""

    name: str
    extended_name: Optional[str] = None
    label_prefixes: tuple[str, ...] = ()   # labels already naming the product
    service_packs: bool = False            # cycle "15.5" is called "15 SP5"


PRODUCTS: dict[str, ProductSpec] = {
    "windows": ProductSpec("Windows", "ESU"),
    "windows-server": ProductSpec("Windows Server", "ESU"),
    "macos": ProductSpec("macOS", label_prefixes=("OS X", "Mac OS X")),
    "ubuntu": ProductSpec("Ubuntu", "ESM"),
    "debian": ProductSpec("Debian", "LTS"),
    "rhel": ProductSpec("Red Hat Enterprise Linux", "ELS"),
    "centos": ProductSpec("CentOS Linux"),
    "centos-stream": ProductSpec("CentOS Stream"),
    "rocky-linux": ProductSpec("Rocky Linux"),
    "almalinux": ProductSpec("AlmaLinux"),
    "oracle-linux": ProductSpec("Oracle Linux", "Extended Support"),
    "amazon-linux": ProductSpec("Amazon Linux"),
    "fedora": ProductSpec("Fedora Linux"),
    "sles": ProductSpec("SUSE Linux Enterprise Server", "LTSS", service_packs=True),
    "opensuse": ProductSpec("openSUSE"),
    "pop-os": ProductSpec("Pop!_OS"),
}

# Windows client cycle ids end with the edition family they cover:
# "-w" Home/Pro, "-e" Enterprise/Education, "-e-lts" Enterprise LTSC,
# "-iot-lts" IoT Enterprise LTSC, "-iot" IoT Core; none: every edition.
WINDOWS_EDITION_SUFFIX = re.compile(r"-(w|e|e-lts|iot-lts|iot)$")
DATE_FIELDS = {"releaseDate": "release_date", "eoas": "eoas", "eol": "eol",
               "eoes": "extended_support", "latestReleaseDate": "latest_date"}


class SourceError(ValueError):
    """The source data cannot be turned into a table without guessing."""


def read_front_matter(path: Path) -> dict[str, Any]:
    """The YAML front matter of one endoflife.date product file.

    Accepts both the bare YAML of the shared snapshot and a ``---`` delimited
    Markdown page, as in the endoflife.date repository.
    """
    import yaml  # build-time only: the collector never needs YAML

    text = path.read_text(encoding="utf-8")
    if text.startswith("---"):
        parts = text.split("\n---", 1)
        text = parts[0][3:]
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("releases"), list):
        raise SourceError(f"{path}: no 'releases' list in the front matter")
    return data


def as_text(value: Any, field: str, where: str) -> str:
    """A version-like field as text.  YAML turns an unquoted ``8.10`` into the float
    8.1; refuse rather than store a wrong version."""
    if isinstance(value, float):
        raise SourceError(f"{where}: {field} {value!r} is an unquoted number; quote it in the source")
    return str(value)


def as_date_or_bool(value: Any, field: str, where: str) -> Any:
    """``2026-10-13`` -> "2026-10-13"; booleans stay booleans (endoflife.date uses
    ``eol: false`` for "no date announced")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return value
    raise SourceError(f"{where}: {field} {value!r} is neither a date nor true/false")


def render_label(template: str, cycle: str, codename: str, spec: ProductSpec) -> str:
    """endoflife.date's ``__RELEASE_CYCLE__``/``__CODENAME__`` template, made to name
    the product ("11 23H2 (W)" -> "Windows 11 23H2 (W)"), in the vendor's words
    ("15.5" -> "15 SP5" for SUSE)."""
    if spec.service_packs and re.fullmatch(r"\d+\.\d+", cycle):
        major, minor = cycle.split(".")
        cycle = major if minor == "0" else f"{major} SP{minor}"
    label = template.replace("__RELEASE_CYCLE__", cycle).replace("__CODENAME__", codename)
    label = re.sub(r"<[^>]+>", "", label).replace(" ()", "").replace(" ''", "").strip()
    if not label.startswith((spec.name,) + spec.label_prefixes):
        label = f"{spec.name} {label}"
    return label


def windows_build(latest: str) -> tuple[Optional[int], Optional[int]]:
    """``10.0.22631`` -> (22631, None); ``10.0.22631.4460`` -> (22631, 4460)."""
    parts = latest.split(".")
    if len(parts) < 3 or not all(p.isdigit() for p in parts):
        return None, None
    return int(parts[2]), int(parts[3]) if len(parts) > 3 else None


def build_cycle(product: str, spec: ProductSpec, release: dict[str, Any],
                default_label: str, where: str) -> dict[str, Any]:
    """One release cycle in the table's shape (absent facts are left out)."""
    cycle = as_text(release["releaseCycle"], "releaseCycle", where)
    where = f"{where} cycle {cycle}"
    codename = str(release.get("codename") or "")
    lts = bool(release.get("lts"))
    label = render_label(str(release.get("releaseLabel") or default_label), cycle, codename, spec)
    if product == "windows" and lts:
        label += " LTSC"   # the source labels LTSC and non-LTSC cycles alike
    out: dict[str, Any] = {"cycle": cycle, "label": label, "lts": lts}
    if codename:
        out["codename"] = codename
    for src, dst in DATE_FIELDS.items():
        if release.get(src) is not None:
            out[dst] = as_date_or_bool(release[src], src, where)
    if release.get("latest") is not None:
        out["latest"] = as_text(release["latest"], "latest", where)
    if product in ("windows", "windows-server") and "latest" in out:
        build, ubr = windows_build(out["latest"])
        if build is not None:
            out["build"] = build
        if ubr is not None:
            out["ubr"] = ubr
    if product == "windows":
        suffix = WINDOWS_EDITION_SUFFIX.search(cycle)
        out["editions"] = suffix.group(1) if suffix else "all"
        out["release"] = cycle[: suffix.start()] if suffix else cycle
    return out


def newest_first(cycles: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest release first; ties broken by cycle id, so the order never depends
    on the source file's order."""
    by_cycle = sorted(cycles, key=lambda c: c["cycle"])
    return sorted(by_cycle, key=lambda c: c.get("release_date", ""), reverse=True)


def build_product(path: Path) -> tuple[str, dict[str, Any]]:
    """One product's entry, keyed by the endoflife.date product id (file stem)."""
    data = read_front_matter(path)
    product = path.stem
    spec = PRODUCTS.get(product, ProductSpec(str(data.get("title") or product)))
    default_label = str(data.get("releaseLabel") or "__RELEASE_CYCLE__")
    cycles = [build_cycle(product, spec, release, default_label, str(path.name))
              for release in data["releases"]]
    ids = [c["cycle"] for c in cycles]
    if len(ids) != len(set(ids)):
        raise SourceError(f"{path}: a releaseCycle appears twice")
    extended_title = data.get("eoesColumn")
    entry: dict[str, Any] = {
        "name": spec.name,
        "title": str(data.get("title") or spec.name),
        "url": f"https://endoflife.date{data.get('permalink') or '/' + product}",
        "cycles": newest_first(cycles),
    }
    if extended_title or spec.extended_name:
        entry["extended_support_name"] = spec.extended_name or "extended support"
        entry["extended_support_title"] = (re.sub(r"<[^>]+>", "", str(extended_title))
                                           if isinstance(extended_title, str)
                                           else spec.extended_name)
    return product, entry


def check_data_date(products: dict[str, Any], data_date: str) -> list[str]:
    """Warnings for dates in the data that are later than the stated data date:
    a sign that ``--data-date`` was not bumped after refreshing the source."""
    warnings = []
    for product, entry in products.items():
        for cycle in entry["cycles"]:
            for field in ("release_date", "latest_date"):
                value = cycle.get(field)
                if isinstance(value, str) and value > data_date:
                    warnings.append(f"{product} {cycle['cycle']}: {field} {value} is after "
                                    f"the data date {data_date}; pass --data-date")
    return warnings


def render(table: dict[str, Any]) -> str:
    """The table as JSON: sorted keys, one cycle per line (small, diff-friendly,
    byte-for-byte reproducible)."""
    def compact(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def block(opening: str, items: Iterable[str], closing: str) -> str:
        return opening + "\n" + ",\n".join(items) + "\n" + closing

    def product(entry: dict[str, Any]) -> str:
        return block("{", (compact(key) + ":" + (block("[", map(compact, value), "]")
                                                 if key == "cycles" else compact(value))
                           for key, value in sorted(entry.items())), "}")

    products = block("{", (compact(name) + ":" + product(entry)
                           for name, entry in sorted(table["products"].items())), "}")
    return block("{", (compact(key) + ":" + (products if key == "products" else compact(value))
                       for key, value in sorted(table.items())), "}") + "\n"


def build_table(source: Path, data_date: str) -> tuple[dict[str, Any], str]:
    """The table and the licence notice text, from every ``*.yaml`` in ``source``."""
    files = sorted(source.glob("*.yaml"))
    if not files:
        raise SourceError(f"{source}: no *.yaml product files")
    license_path = source / "LICENSE"
    if not license_path.is_file():
        raise SourceError(f"{license_path}: the MIT notice is missing; it must ship with the data")
    notice = license_path.read_text(encoding="utf-8").strip() + "\n"
    products = dict(build_product(path) for path in files)
    table = {
        "schema": SCHEMA,
        "data_date": data_date,
        "source": "endoflife.date release data (https://endoflife.date, "
                  "https://github.com/endoflife-date/endoflife.date), product front matter",
        "license": "MIT. " + notice.replace("\n\n", " ").replace("\n", " ").strip(),
        "products": products,
    }
    return table, notice


def license_file_text(notice: str) -> str:
    return ("collector/data/lifecycle.json is derived from endoflife.date release data\n"
            "(https://endoflife.date), used under the following licence:\n\n" + notice)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="folder of endoflife.date *.yaml files and LICENSE "
                             "(default: ../shared/lifecycle-source beside the repo)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="table to write (default: collector/data/lifecycle.json); "
                             f"{LICENSE_NAME} is written beside it")
    parser.add_argument("--data-date", default=DEFAULT_DATA_DATE,
                        help=f"date of the source snapshot (default: {DEFAULT_DATA_DATE})")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        dt.date.fromisoformat(args.data_date)
    except ValueError:
        print(f"--data-date {args.data_date!r} is not a YYYY-MM-DD date", file=sys.stderr)
        return 2
    try:
        table, notice = build_table(args.source, args.data_date)
    except (SourceError, OSError) as exc:
        print(f"cannot build the lifecycle table: {exc}", file=sys.stderr)
        return 1
    for warning in check_data_date(table["products"], args.data_date):
        print(f"warning: {warning}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(table), encoding="utf-8", newline="\n")
    (args.out.parent / LICENSE_NAME).write_text(license_file_text(notice), encoding="utf-8",
                                                newline="\n")
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size} bytes, {len(table['products'])} products, "
          f"data of {args.data_date})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
