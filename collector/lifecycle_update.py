"""Refresh the lifecycle table over the network: endoflife.date's public API, or an intake.

The bundled table ages out (a ``supported`` verdict needs data at most 180 days old),
so ``jcdiag lifecycle update`` fetches a fresh one and stores it on this machine, and
``collect --upload`` pulls the support team's vetted copy from the intake at pre-flight.
Everything fetched is hostile until :mod:`collector.lifecycle_data` has validated it:
answers are size-capped while they stream, requests are few (one per product) and
time-bounded, and nothing is stored unless the whole table is valid.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urljoin, urlsplit

from .lifecycle_data import (MAX_TABLE_BYTES, SourceError, TableError, bundled_table, effective_table,
                             parse_table, store_table, stored_path, table_from_api)

DEFAULT_API = "https://endoflife.date/api/v1/products/"
INTAKE_PATH = "api/v1/lifecycle"
TIMEOUT = (5.0, 20.0)              # connect, read (seconds) per request
PREFLIGHT_TIMEOUT = (3.0, 10.0)
MAX_PRODUCT_BYTES = 512 * 1024     # one product's API answer (Windows, the largest, is about 60 KB)


class UpdateError(Exception):
    """The table could not be fetched or was refused; the message says why and what to do."""


@dataclass
class Update:
    """What an update did: the table fetched, and whether it replaced the one in use."""

    table: dict[str, Any]
    source: str
    previous_date: str
    path: Optional[Path] = None          # where it was stored (None: the copy here is newer)

    def to_json(self) -> dict[str, Any]:
        products = self.table["products"]
        return {"source": self.source, "data_date": self.table["data_date"],
                "previous_data_date": self.previous_date, "stored": str(self.path) if self.path else None,
                "products": len(products), "cycles": sum(len(e["cycles"]) for e in products.values())}


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UpdateError(f"{what} {url!r} is not an http(s) URL")
    return url if url.endswith("/") else url + "/"


def _get(session, url: str, limit: int, timeout=TIMEOUT, verify: Any = True) -> bytes:
    """The body of a 200 answer to GET ``url``, at most ``limit`` bytes, or UpdateError."""
    import requests

    try:
        with session.get(url, timeout=timeout, stream=True, verify=verify,
                         headers={"Accept": "application/json"}) as reply:
            if reply.status_code != 200:
                raise UpdateError(f"{url} answered {reply.status_code} {reply.reason or ''}".rstrip())
            declared = reply.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise UpdateError(f"{url} sent {declared} bytes, more than the {limit} a table may have")
            body = bytearray()
            for chunk in reply.iter_content(65536):
                body += chunk
                if len(body) > limit:
                    raise UpdateError(f"{url} sent more than the {limit} bytes a table may have")
            return bytes(body)
    except requests.RequestException as exc:
        raise UpdateError(f"cannot reach {url}: {type(exc).__name__}") from None


def _json(data: bytes, url: str) -> Any:
    import json

    try:
        return json.loads(data.decode("utf-8"), parse_constant=lambda name: None)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UpdateError(f"{url} did not answer JSON") from None


def from_endoflife(api: str = DEFAULT_API, session=None, today: Optional[str] = None) -> tuple[dict, str]:
    """The table from endoflife.date's API v1: one GET ``<api><product>/`` per product jcdiag
    knows.  Its date is today's (UTC): the API serves the current data."""
    import requests

    api = _check_url(api, "--endoflife-url")
    session = session or requests.Session()
    documents = {}
    for product in sorted(bundled_table()["products"]):
        url = urljoin(api, f"{product}/")
        documents[product] = _json(_get(session, url, MAX_PRODUCT_BYTES), url)
    today = today or datetime.now(timezone.utc).date().isoformat()
    source = f"endoflife.date API v1 ({api}<product>/), fetched {today}"
    try:
        return table_from_api(documents, today, source), api
    except (SourceError, TableError) as exc:
        raise UpdateError(f"refused the data from {api}: {exc}; nothing was stored") from None


def from_intake(server: str, session=None, timeout=TIMEOUT, verify: Any = True) -> tuple[dict, str]:
    """The table an intake serves at ``<server>/api/v1/lifecycle`` (the project's own format)."""
    import requests

    url = urljoin(_check_url(server, "--from"), INTAKE_PATH)
    data = _get(session or requests.Session(), url, MAX_TABLE_BYTES, timeout, verify)
    try:
        return parse_table(data), url
    except TableError as exc:
        raise UpdateError(f"refused the table from {url}: {exc}; nothing was stored") from None


def update(server: Optional[str] = None, api: str = DEFAULT_API, session=None) -> Update:
    """``jcdiag lifecycle update``: fetch, validate, store unless the copy here is newer."""
    previous = effective_table()["data_date"]
    table, source = from_intake(server, session) if server else from_endoflife(api, session)
    if table["data_date"] < previous:
        return Update(table, source, previous)
    try:
        return Update(table, source, previous, store_table(table))
    except OSError as exc:
        raise UpdateError(f"cannot store the table at {stored_path()}: {exc.strerror or exc}") from None


def pull_from_intake(api_url: str, verify: Any = True) -> Optional[str]:
    """``collect --upload`` pre-flight: store the intake's table when it is newer than the one
    in use.  Returns a sentence for the run's warnings when it could not (never raises)."""
    try:
        server = api_url[: -len("api/v1/")] if api_url.endswith("api/v1/") else api_url
        previous = effective_table()["data_date"]
        table, _ = from_intake(server, timeout=PREFLIGHT_TIMEOUT, verify=verify)
        if table["data_date"] > previous:
            store_table(table)
    except UpdateError as exc:
        return f"lifecycle data not refreshed from the intake: {exc}"
    except OSError as exc:
        return f"lifecycle data not refreshed from the intake: cannot store it ({exc.strerror or exc})"
    return None
