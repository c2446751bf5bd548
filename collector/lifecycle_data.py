"""The lifecycle table's one format: how endoflife.date data becomes it, and what a valid one is.

Two producers share this code so they cannot drift apart: ``scripts/build_lifecycle.py``
(endoflife.date's YAML front matter -> the table bundled in ``collector/data``) and
``jcdiag lifecycle update`` (endoflife.date's public API v1, or an intake's copy -> the
table stored on this machine).  Both give the same shape, rendered by :func:`render`.

Everything a refreshed table brings is network input: :func:`validate_table` checks it
strictly (schema, types, dates, sizes, printable text, every bundled product present)
before anything uses or stores it, and :func:`stored_table` re-checks the stored copy
each time it is read.  :func:`effective_table` picks the newest valid table.
"""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
import datetime as dt
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional

SCHEMA = 1
ENV_FILE = "JCDIAG_LIFECYCLE_FILE"      # where the refreshed table is stored (tests, MDM)
MAX_TABLE_BYTES = 2 * 1024 * 1024       # the bundled one is about 70 KB
MAX_PRODUCTS = 64
MAX_CYCLES = 400
MAX_TEXT = 200


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


def build_entry(product: str, releases: Iterable[dict[str, Any]], *, title: Optional[str], url: str,
                default_label: str, extended_title: Any, where: str) -> dict[str, Any]:
    """One product's entry from its releases in front-matter words (absent facts left out).

    ``extended_title``: the source's name of the extended-support column (text, ``True``
    for the default, or None when the product has none)."""
    spec = PRODUCTS.get(product, ProductSpec(str(title or product)))
    cycles = [build_cycle(product, spec, release, default_label, where) for release in releases]
    ids = [c["cycle"] for c in cycles]
    if len(ids) != len(set(ids)):
        raise SourceError(f"{where}: a releaseCycle appears twice")
    entry: dict[str, Any] = {
        "name": spec.name,
        "title": str(title or spec.name),
        "url": url,
        "cycles": newest_first(cycles),
    }
    if extended_title or spec.extended_name:
        entry["extended_support_name"] = spec.extended_name or "extended support"
        entry["extended_support_title"] = (re.sub(r"<[^>]+>", "", str(extended_title))
                                           if isinstance(extended_title, str)
                                           else spec.extended_name)
    return entry


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




# --------------------------------------------------------------------------- endoflife.date API v1

_API_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def _api_text(value: Any, field: str, where: str, optional: bool = True) -> Optional[str]:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise SourceError(f"{where}: {field} must be text of at most {MAX_TEXT} characters")
    return value


def _api_flag(value: Any, field: str, where: str) -> Optional[bool]:
    if value is not None and not isinstance(value, bool):
        raise SourceError(f"{where}: {field} must be true, false or null")
    return value


def release_from_api(release: Any, where: str) -> dict[str, Any]:
    """One API v1 release (``name``, ``label``, ``releaseDate``, ``isEol``/``eolFrom``...)
    in the front-matter words :func:`build_cycle` reads (``releaseCycle``, ``eol``...).

    A date wins over its flag; with no date, the flag is kept (``eol: true`` = ended, date
    unknown; ``false`` = no date announced), as the front matter says it."""
    if not isinstance(release, dict):
        raise SourceError(f"{where}: a release is not an object")
    name = release.get("name")
    if not isinstance(name, str) or not _API_NAME.fullmatch(name):
        raise SourceError(f"{where}: release name {str(name)[:40]!r} is not a release cycle id")
    where = f"{where} cycle {name}"
    out: dict[str, Any] = {"releaseCycle": name, "lts": bool(_api_flag(release.get("isLts"), "isLts", where))}
    codename = _api_text(release.get("codename"), "codename", where)
    if codename:
        out["codename"] = codename
    label = _api_text(release.get("label"), "label", where)
    if label:       # the API renders the label; give it back its cycle placeholder (SUSE's "15 SP5")
        token = re.compile(r"(?<![\w.])" + re.escape(name) + r"(?![\w.])")
        out["releaseLabel"] = token.sub("__RELEASE_CYCLE__", label, count=1)
    for src, flag, dst in (("releaseDate", None, "releaseDate"), ("eoasFrom", "isEoas", "eoas"),
                           ("eolFrom", "isEol", "eol"), ("eoesFrom", "isEoes", "eoes")):
        when = _api_text(release.get(src), src, where)
        known = _api_flag(release.get(flag), flag, where) if flag else None
        if when is not None:
            out[dst] = when
        elif known is not None:
            out[dst] = known
    latest = release.get("latest")
    if latest is not None:
        if not isinstance(latest, dict):
            raise SourceError(f"{where}: latest must be an object")
        if _api_text(latest.get("name"), "latest.name", where):
            out["latest"] = latest["name"]
        if _api_text(latest.get("date"), "latest.date", where):
            out["latestReleaseDate"] = latest["date"]
    return out


def product_from_api(product: str, document: Any) -> dict[str, Any]:
    """One product's table entry from the API v1 answer ``{"result": {...}}`` for ``product``."""
    where = f"endoflife.date {product}"
    result = document.get("result") if isinstance(document, dict) else None
    if not isinstance(result, dict) or not isinstance(result.get("releases"), list):
        raise SourceError(f"{where}: the answer has no result.releases list")
    if result.get("name") not in (None, product):
        raise SourceError(f"{where}: the answer is about {str(result.get('name'))[:40]!r}")
    if not 0 < len(result["releases"]) <= MAX_CYCLES:
        raise SourceError(f"{where}: {len(result['releases'])} releases (1 to {MAX_CYCLES} expected)")
    links = result.get("links") if isinstance(result.get("links"), dict) else {}
    labels = result.get("labels") if isinstance(result.get("labels"), dict) else {}
    url = _api_text(links.get("html"), "links.html", where)
    return build_entry(product, [release_from_api(r, where) for r in result["releases"]],
                       title=_api_text(result.get("label"), "label", where),
                       url=url if url and url.startswith("https://endoflife.date/") else
                       f"https://endoflife.date/{product}",
                       default_label="__RELEASE_CYCLE__",
                       extended_title=_api_text(labels.get("eoes"), "labels.eoes", where), where=where)


def table_from_api(documents: dict[str, Any], data_date: str, source: str) -> dict[str, Any]:
    """The whole table from one API v1 answer per product, validated."""
    products = {product: product_from_api(product, doc) for product, doc in sorted(documents.items())}
    table = {"schema": SCHEMA, "data_date": data_date, "source": source,
             "license": bundled_table()["license"], "products": products}
    return validate_table(table)


# --------------------------------------------------------------------------- validation

_PRODUCT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_CYCLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_DATE_KEYS = ("release_date", "eoas", "eol", "extended_support", "latest_date")
_CYCLE_KEYS = frozenset(("cycle", "label", "lts", "codename", "latest", "build", "ubr", "editions",
                         "release") + _DATE_KEYS)
_ENTRY_KEYS = frozenset(("name", "title", "url", "cycles", "extended_support_name", "extended_support_title"))
_TABLE_KEYS = frozenset(("schema", "data_date", "source", "license", "products"))
_EDITIONS = frozenset(("all", "w", "e", "e-lts", "iot-lts", "iot"))


class TableError(ValueError):
    """A lifecycle table that is not safe to use; the message says what is wrong."""


def _text(value: Any, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise TableError(f"{where} must be printable text of 1 to {limit} characters")
    return value


def _iso(value: Any, where: str) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise TableError(f"{where} must be a YYYY-MM-DD date")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise TableError(f"{where} {value!r} is not a calendar date") from None


def _cycle(cycle: Any, where: str) -> None:
    if not isinstance(cycle, dict) or not _CYCLE_KEYS.issuperset(cycle):
        raise TableError(f"{where}: a cycle must be an object with known fields only")
    if not isinstance(cycle.get("cycle"), str) or not _CYCLE_ID.fullmatch(cycle["cycle"]):
        raise TableError(f"{where}: a cycle id is missing or malformed")
    where = f"{where} cycle {cycle['cycle']}"
    _text(cycle.get("label"), f"{where} label")
    if not isinstance(cycle.get("lts"), bool):
        raise TableError(f"{where}: lts must be true or false")
    for key in ("codename", "latest", "release"):
        if key in cycle:
            _text(cycle[key], f"{where} {key}", 64)
    for key in _DATE_KEYS:
        if key in cycle and not (isinstance(cycle[key], bool) and key in ("eoas", "eol", "extended_support")):
            _iso(cycle[key], f"{where} {key}")
    for key in ("build", "ubr"):
        if key in cycle and (type(cycle[key]) is not int or not 0 <= cycle[key] < 10 ** 7):
            raise TableError(f"{where}: {key} must be a whole number")
    if "editions" in cycle and (not isinstance(cycle["editions"], str) or cycle["editions"] not in _EDITIONS):
        raise TableError(f"{where}: editions must be one of {', '.join(sorted(_EDITIONS))}")


def validate_table(table: Any, required: Optional[Iterable[str]] = None) -> dict[str, Any]:
    """``table`` if it is a lifecycle table jcdiag can judge with, else :class:`TableError`.

    ``required``: products that must be present (default: every product of the bundled
    table, so a refresh can never quietly turn verdicts into "unknown")."""
    if not isinstance(table, dict) or not _TABLE_KEYS.issuperset(table) or table.get("schema") != SCHEMA:
        raise TableError(f"not a lifecycle table of schema {SCHEMA}")
    _iso(table.get("data_date"), "data_date")
    _text(table.get("source"), "source", 1000)
    _text(table.get("license"), "license", 4000)
    products = table.get("products")
    if not isinstance(products, dict) or not 0 < len(products) <= MAX_PRODUCTS:
        raise TableError(f"products must be an object of 1 to {MAX_PRODUCTS} products")
    for product, entry in products.items():
        if not _PRODUCT_ID.fullmatch(product):
            raise TableError(f"product id {product[:40]!r} is malformed")
        if not isinstance(entry, dict) or not _ENTRY_KEYS.issuperset(entry):
            raise TableError(f"{product}: an entry must be an object with known fields only")
        for key in ("name", "title", "url"):
            _text(entry.get(key), f"{product} {key}")
        for key in ("extended_support_name", "extended_support_title"):
            if key in entry:
                _text(entry[key], f"{product} {key}")
        cycles = entry.get("cycles")
        if not isinstance(cycles, list) or not 0 < len(cycles) <= MAX_CYCLES:
            raise TableError(f"{product}: cycles must be a list of 1 to {MAX_CYCLES}")
        for cycle in cycles:
            _cycle(cycle, product)
        if len({c["cycle"] for c in cycles}) != len(cycles):
            raise TableError(f"{product}: a cycle appears twice")
    missing = sorted(set(bundled_table()["products"] if required is None else required) - set(products))
    if missing:
        raise TableError(f"products missing: {', '.join(missing)}")
    return table


def parse_table(data: bytes) -> dict[str, Any]:
    """A table from its JSON bytes (size-capped, strict JSON), validated."""
    if len(data) > MAX_TABLE_BYTES:
        raise TableError(f"the table is larger than {MAX_TABLE_BYTES} bytes")

    def no_constants(name: str) -> Any:
        raise TableError(f"{name} is not JSON")
    try:
        table = json.loads(data.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TableError(f"not JSON ({type(exc).__name__})") from None
    return validate_table(table)


# --------------------------------------------------------------------------- where tables live


@lru_cache(maxsize=1)
def bundled_table() -> dict[str, Any]:
    """The table shipped in the package (read once; do not mutate it)."""
    from .data import read_data       # the one reader of shipped data

    table = json.loads(read_data("lifecycle.json")[0])
    if table.get("schema") != SCHEMA:
        raise ValueError(f"lifecycle.json has schema {table.get('schema')!r}, this jcdiag reads "
                         f"{SCHEMA}: rebuild it with scripts/build_lifecycle.py")
    return table


def stored_path() -> Path:
    """Where ``jcdiag lifecycle update`` keeps the refreshed table: ``$JCDIAG_LIFECYCLE_FILE``,
    else beside the spool in jcdiag's state folder (``/var/lib/jcdiag/lifecycle.json`` as root,
    ``~/.local/state/jcdiag/lifecycle.json`` otherwise)."""
    if os.environ.get(ENV_FILE):
        return Path(os.environ[ENV_FILE])
    from .spool import default_state_dir
    return default_state_dir() / "lifecycle.json"


def stored_table(path: Optional[Path] = None) -> Optional[dict[str, Any]]:
    """The stored table if there is a valid one (re-read only when the file changes), else None."""
    path = path or stored_path()
    try:
        st = path.stat()
    except OSError:
        return None
    return _read_stored(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=4)
def _read_stored(path: str, mtime_ns: int, size: int) -> Optional[dict[str, Any]]:
    if size > MAX_TABLE_BYTES:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            return parse_table(fh.read(MAX_TABLE_BYTES + 1))
    except (OSError, TableError):
        return None


def effective_table() -> dict[str, Any]:
    """The stored table when it is newer than the bundled one, else the bundled one."""
    bundled = bundled_table()
    stored = stored_table()
    return stored if stored is not None and stored["data_date"] > bundled["data_date"] else bundled


def store_table(table: dict[str, Any], path: Optional[Path] = None) -> Path:
    """Write a validated table atomically (readable by everyone: it is public data)."""
    from .durable import write_atomic

    path = path or stored_path()
    validate_table(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, render(table).encode("utf-8"), mode=0o644)
    return path
