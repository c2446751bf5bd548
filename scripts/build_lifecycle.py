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
import sys
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The conversion is shared with `jcdiag lifecycle update` (collector/lifecycle_data.py), so
# the bundled table and a refreshed one cannot drift apart.
from collector.lifecycle_data import (PRODUCTS, SCHEMA, ProductSpec, SourceError, build_entry,  # noqa: E402,F401
                                      check_data_date, render)

DEFAULT_SOURCE = REPO.parent / "shared" / "lifecycle-source"
DEFAULT_OUT = REPO / "collector" / "data" / "lifecycle.json"
DEFAULT_DATA_DATE = "2026-08-22"   # the snapshot date of ../shared/lifecycle-source
LICENSE_NAME = "LICENSE-endoflife-date.txt"


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


def build_product(path: Path) -> tuple[str, dict[str, Any]]:
    """One product's entry, keyed by the endoflife.date product id (file stem)."""
    data = read_front_matter(path)
    product = path.stem
    return product, build_entry(
        product, data["releases"], title=data.get("title"),
        url=f"https://endoflife.date{data.get('permalink') or '/' + product}",
        default_label=str(data.get("releaseLabel") or "__RELEASE_CYCLE__"),
        extended_title=data.get("eoesColumn"), where=str(path.name))


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
