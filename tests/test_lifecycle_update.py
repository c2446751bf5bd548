"""jcdiag lifecycle update: endoflife.date API v1 (a recorded answer served on 127.0.0.1) or an
intake's copy, validated, stored per machine, used when newer; collect --upload pulls it."""
import json
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from collector.lifecycle_data import (TableError, bundled_table, parse_table, render, stored_table,
                                      validate_table)
from tests.transfer_kit import Intake, jcdiag, one_json

FIX = Path(__file__).resolve().parent / "fixtures" / "lifecycle"
TODAY = date.today()


def as_api(product: str, entry: dict) -> dict:
    """A table entry in endoflife.date's API v1 shape (the fields jcdiag reads, and a few it does not)."""
    def when(value, flag: str, field: str) -> dict:
        if value is None or isinstance(value, bool):
            return {flag: value, field: None}
        return {flag: value <= TODAY.isoformat(), field: value}

    def release(c):
        return {"name": c["cycle"], "codename": c.get("codename"), "label": c["label"],
                "releaseDate": c.get("release_date"), "isLts": c["lts"], "ltsFrom": None,
                **when(c.get("eoas"), "isEoas", "eoasFrom"), **when(c.get("eol"), "isEol", "eolFrom"),
                **when(c.get("extended_support"), "isEoes", "eoesFrom"), "isMaintained": True, "custom": None,
                "latest": ({"name": c["latest"], "date": c.get("latest_date"), "link": None}
                           if "latest" in c else None)}
    return {"schema_version": "1.2.0", "generated_at": f"{TODAY}T06:00:00+00:00",
            "result": {"name": product, "aliases": [], "label": entry["title"], "category": "os", "tags": [],
                       "labels": {"eoas": None, "discontinued": None, "eol": "Security Support",
                                  "eoes": entry.get("extended_support_title")},
                       "links": {"html": entry["url"], "icon": None, "releasePolicy": None},
                       "releases": [release(c) for c in entry["cycles"]]}}


class FakeEndoflife:
    """endoflife.date's API v1 on 127.0.0.1: ``/api/v1/products/<product>/`` from recorded answers."""

    def __init__(self, answers: dict):
        self.answers = answers              # path -> (status, bytes)
        self.seen: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.seen.append(self.path)
                status, body = fake.answers.get(self.path, (404, b'{"message": "Product not found"}'))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/products/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def recorded_answers() -> dict:
    """Every product jcdiag knows: Ubuntu as recorded from the API, the rest in the same shape."""
    answers = {f"/api/v1/products/{p}/": (200, json.dumps(as_api(p, e)).encode())
               for p, e in bundled_table()["products"].items()}
    answers["/api/v1/products/ubuntu/"] = (200, (FIX / "api-v1-ubuntu.json").read_bytes())
    return answers


@pytest.fixture
def endoflife():
    fake = FakeEndoflife(recorded_answers())
    yield fake
    fake.close()


@pytest.fixture
def noble(tmp_path):
    root = tmp_path / "noble"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
                                         'VERSION="24.04.1 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\n')
    return root


def stored_file() -> Path:
    import os
    return Path(os.environ["JCDIAG_LIFECYCLE_FILE"])


def release_of(root: Path, as_of: str) -> dict:
    r = jcdiag("check", "--root", root, "--platform", "linux", "--as-of", as_of, "--json")
    assert r.returncode in (0, 3), r.stderr
    return one_json(r)["lifecycle"]


def test_update_from_endoflife_api_is_stored_and_used(endoflife, noble):
    # with the bundled data (2026-08-22) a judgement 200 days after it cannot claim supported
    as_of = (date(2026, 8, 22) + timedelta(days=200)).isoformat()
    if TODAY + timedelta(days=180) < date.fromisoformat(as_of):
        pytest.skip("this machine's clock is too far behind the bundled data")
    before = release_of(noble, as_of)
    assert before["release"] == "unknown" and before["data_date"] == "2026-08-22"

    r = jcdiag("lifecycle", "update", "--endoflife-url", endoflife.url, "--json")
    assert r.returncode == 0, r.stderr
    out = one_json(r)
    assert out["data_date"] == TODAY.isoformat() and out["stored"] == str(stored_file())
    assert out["products"] == len(bundled_table()["products"]) and out["previous_data_date"] == "2026-08-22"
    assert sorted(endoflife.seen) == sorted(f"/api/v1/products/{p}/" for p in bundled_table()["products"])
    table = json.loads(stored_file().read_text())
    assert table["data_date"] == TODAY.isoformat() and "endoflife.date API v1" in table["source"]
    noble_cycle = next(c for c in table["products"]["ubuntu"]["cycles"] if c["cycle"] == "24.04")
    assert noble_cycle == {"cycle": "24.04", "codename": "Noble Numbat", "label": "Ubuntu 24.04 'Noble Numbat'",
                           "lts": True, "release_date": "2024-04-25", "eoas": "2029-05-31", "eol": "2029-05-31",
                           "extended_support": "2034-04-25", "latest": "24.04.4", "latest_date": "2026-02-12"}

    after = release_of(noble, as_of)
    assert after["release"] == "supported" and after["data_date"] == TODAY.isoformat()
    assert after["extended_support"]["until"] == "2034-04-25"      # the refreshed date, not the bundled one


def test_update_prints_one_line_per_outcome_for_people(endoflife):
    r = jcdiag("lifecycle", "update", "--endoflife-url", endoflife.url)
    assert r.returncode == 0 and f"Lifecycle data of {TODAY}" in r.stdout and str(stored_file()) in r.stdout


@pytest.mark.parametrize("change,why", [
    (lambda a: a.update({"/api/v1/products/debian/": (200, b"<html>maintenance</html>")}), "did not answer JSON"),
    (lambda a: a.update({"/api/v1/products/debian/": (503, b"{}")}), "answered 503"),
    (lambda a: a.pop("/api/v1/products/sles/"), "answered 404"),
    (lambda a: a.update({"/api/v1/products/fedora/": (200, b'{"result": {"name": "fedora", "releases": '
                                                            b'[{"name": "41", "eolFrom": "2025-13-40", '
                                                            b'"isEol": false}]}}')}), "calendar date"),
    (lambda a: a.update({"/api/v1/products/fedora/": (200, b'{"result": {"name": "fedora", "releases": '
                                                            b'[{"name": "41", "label": "41\\u001b[2J", '
                                                            b'"isEol": false}]}}')}), "printable"),
    (lambda a: a.update({"/api/v1/products/macos/": (200, b'{"result": {"name": "macos", "releases": '
                                                          b'[{"name": "../../x", "isEol": true}]}}')}), "cycle id"),
    (lambda a: a.update({"/api/v1/products/macos/": (200, b'{"result": {"name": "windows", "releases": []}}')}),
     "is about"),
    (lambda a: a.update({"/api/v1/products/rhel/": (200, b'{"result": {"name": "rhel", "releases": ['
                                                        + b",".join([b'{"name": "9", "isEol": false}'] * 2)
                                                        + b"]}}")}), "appears twice"),
    (lambda a: a.update({"/api/v1/products/rhel/": (200, b" " * (600 * 1024))}), "more than"),
])
def test_bad_api_answers_are_refused_and_nothing_is_stored(change, why):
    answers = recorded_answers()
    change(answers)
    fake = FakeEndoflife(answers)
    try:
        r = jcdiag("lifecycle", "update", "--endoflife-url", fake.url, "--json")
    finally:
        fake.close()
    assert r.returncode == 1, r.stdout + r.stderr
    error = one_json(r)["error"]
    assert why in error and "\x1b" not in r.stdout
    assert not stored_file().exists()


def test_an_unreachable_source_is_one_line_exit_1(tmp_path):
    r = jcdiag("lifecycle", "update", "--from", "http://127.0.0.1:9/")
    assert r.returncode == 1 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    assert "cannot reach http://127.0.0.1:9/api/v1/lifecycle" in r.stderr
    r = jcdiag("lifecycle", "update", "--from", "file:///etc/passwd")
    assert r.returncode == 1 and "not an http(s) URL" in r.stderr


def newer_table(days: int = 30) -> dict:
    table = json.loads(json.dumps(bundled_table()))
    table["data_date"] = (date.fromisoformat(table["data_date"]) + timedelta(days=days)).isoformat()
    table["source"] = "support team's vetted copy"
    return table


def test_intake_serves_its_vetted_copy_and_collectors_take_it(tmp_path, noble):
    data = tmp_path / "intake-data"
    data.mkdir()
    table = newer_table(100)
    (data / "lifecycle.json").write_text(render(table))
    with Intake(data) as intake:
        served = intake.get("/api/v1/lifecycle")          # no token: public data
        assert served.status_code == 200 and served.json()["data_date"] == table["data_date"]
        r = jcdiag("lifecycle", "update", "--from", intake.url, "--json")
        assert r.returncode == 0, r.stderr
        assert one_json(r)["data_date"] == table["data_date"]
        assert stored_table(stored_file())["source"] == "support team's vetted copy"
    # an intake whose copy is older than the one here leaves it alone
    fake = FakeEndoflife({"/api/v1/lifecycle": (200, render(newer_table(5)).encode())})
    try:
        r = jcdiag("lifecycle", "update", "--from", fake.url.replace("api/v1/products/", ""))
    finally:
        fake.close()
    assert r.returncode == 0 and "Kept the lifecycle data here" in r.stdout, r.stdout + r.stderr
    assert stored_table(stored_file())["data_date"] == table["data_date"]


def test_intake_without_a_vetted_copy_serves_the_bundled_one(tmp_path):
    with Intake(tmp_path / "intake-data") as intake:
        served = intake.get("/api/v1/lifecycle")
    assert served.content.decode() == render(bundled_table())


def test_collect_upload_pulls_the_intakes_table_at_preflight(tmp_path, noble):
    from tests.hosts import linux_host

    root = linux_host(tmp_path / "host")
    data = tmp_path / "intake-data"
    data.mkdir()
    table = newer_table(120)
    (data / "lifecycle.json").write_text(render(table))
    with Intake(data) as intake:
        token = intake.token_file(tmp_path / "token", "--case", "77")
        r = jcdiag("collect", "--root", root, "--platform", "linux", "--server", intake.url, "--case", "77",
                   "--token-file", token, "--upload", "--output", tmp_path / "out", "--json", "--yes")
    assert r.returncode in (0, 3), r.stderr
    out = one_json(r)
    assert out["upload"]["status"] == "uploaded"
    assert stored_table(stored_file())["data_date"] == table["data_date"]
    assert not any("lifecycle" in w for w in out["warnings"])


def test_a_broken_intake_table_is_a_warning_at_preflight(tmp_path):
    from collector.lifecycle_update import pull_from_intake

    answers = {"/api/v1/lifecycle": (200, b'{"schema": 1, "data_date": "2099-01-01"}')}
    fake = FakeEndoflife(answers)
    try:
        problem = pull_from_intake(fake.url.replace("products/", ""))
    finally:
        fake.close()
    assert problem and "lifecycle data not refreshed" in problem and "refused" in problem
    assert not stored_file().exists()


def test_a_damaged_stored_copy_is_ignored(tmp_path):
    from collector.lifecycle import load_table

    stored_file().parent.mkdir(parents=True, exist_ok=True)
    table = newer_table(10)
    table["products"]["ubuntu"]["cycles"][0]["eol"] = "someday"
    stored_file().write_text(json.dumps(table))
    assert load_table() is bundled_table()
    table["products"]["ubuntu"]["cycles"][0]["eol"] = "2031-04-30"
    stored_file().write_text(render(table))
    assert load_table()["data_date"] == table["data_date"]


_cycle_key = st.sampled_from(["cycle", "label", "lts", "eol", "eoas", "latest", "build", "editions", "codename",
                              "release_date", "extended_support", "other"])
_junk = st.one_of(st.none(), st.booleans(), st.integers(-2, 10 ** 8), st.text(max_size=30),
                  st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(product=st.sampled_from(sorted(bundled_table()["products"])), key=_cycle_key, value=_junk)
def test_validation_either_refuses_or_keeps_a_usable_table(product, key, value):
    table = json.loads(json.dumps(bundled_table()))
    table["products"][product]["cycles"][0][key] = value
    try:
        checked = parse_table(render(table).encode())
    except TableError:
        return
    cycle = checked["products"][product]["cycles"][0]
    from collector.lifecycle import verdict  # noqa: F401 - the table is one verdict can use
    assert isinstance(cycle["cycle"], str) and isinstance(cycle["label"], str) and cycle["label"].isprintable()
    for k in ("eol", "eoas", "release_date", "latest_date"):
        if isinstance(cycle.get(k), str):
            date.fromisoformat(cycle[k])


def test_validation_refuses_missing_products_and_oversize():
    table = json.loads(json.dumps(bundled_table()))
    del table["products"]["windows"]
    with pytest.raises(TableError, match="products missing: windows"):
        validate_table(table)
    with pytest.raises(TableError, match="larger than"):
        parse_table(b" " * (3 * 1024 * 1024))
    with pytest.raises(TableError, match="not JSON"):
        parse_table(b'{"schema": NaN}')
