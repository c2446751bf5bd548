"""The official tus client, tus-js-client on Node, against the real intake on 127.0.0.1.

Set up once with ``npm ci --prefix tests/tusjs`` (tests/tusjs/package.json pins the version);
the tests are skipped, saying so, when Node or the package is missing.  The client runs with
its own default retry rules (it retries network errors, 5xx, 409 and 423).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from intake.tokens import issue
from tests.transfer_kit import REPO, FaultProxy, Intake, make_bundle

HERE = REPO / "tests" / "tusjs"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (HERE / "node_modules" / "tus-js-client").is_dir(),
    reason="tus-js-client is not installed: npm ci --prefix tests/tusjs (needs Node)")


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    with Intake(tmp_path_factory.mktemp("tusjs") / "data") as service:
        yield service


def tusjs(endpoint: str, token: str, bundle: dict, chunk: int = 64 * 1024) -> dict:
    metadata = {"bundle_id": bundle["bundle_id"], "sha256": bundle["sha256"], "filename": "b.7z",
                "filetype": "application/x-7z-compressed"}
    r = subprocess.run(["node", str(HERE / "upload.mjs"), endpoint, token, bundle["path"], json.dumps(metadata),
                        str(chunk)], capture_output=True, text=True, timeout=120, cwd=HERE,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def posts(service: Intake, case: str) -> int:
    return sum(1 for line in service.log_lines()
               if line.get("method") == "POST" and line.get("path") == "/files/" and line.get("case") == case)


@pytest.mark.timeout(180)
def test_tus_js_client_uploads_and_resumes_through_cuts(intake, tmp_path):
    bundle = make_bundle(tmp_path / "b", intake.data / "support.pub.pem", case="JS-1", random_bytes=700_000)
    proxy = FaultProxy([intake.port], cuts=4, up_window=300_000, seed=3)
    try:
        result = tusjs(proxy.url + "/files/", intake.token("--case", "JS-1"), bundle)
    finally:
        proxy.close()
    assert result["ok"], result
    engineer = intake.token("--engineer")
    record = intake.get(f"/api/v1/bundles/{bundle['bundle_id']}", engineer).json()
    assert record["sha256"] == bundle["sha256"] and record["verified"] is True
    assert proxy.cuts_done >= 1


def test_tus_js_client_does_not_retry_a_finished_bundle(intake, tmp_path):
    bundle = make_bundle(tmp_path / "b", intake.data / "support.pub.pem", case="JS-2")
    token = intake.token("--case", "JS-2")
    assert tusjs(intake.url + "/files/", token, bundle)["ok"]
    before = posts(intake, "JS-2")
    again = tusjs(intake.url + "/files/", token, bundle)
    assert not again["ok"] and again["status"] == 403 and json.loads(again["body"])["already_uploaded"]
    assert posts(intake, "JS-2") == before + 1                 # one answer, no retries


def test_tus_js_client_hears_quota_and_bad_token_once(tmp_path):
    with Intake(tmp_path / "data", extra=("--max-size", "4k")) as service:
        bundle = make_bundle(tmp_path / "b", service.data / "support.pub.pem", case="JS-3")
        token = service.token("--case", "JS-3")
        big = tusjs(service.url + "/files/", token, bundle)
        assert not big["ok"] and big["status"] == 413
        stranger = issue(os.urandom(32), "upload", "JS-3", 600)          # signed by another secret
        wrong = tusjs(service.url + "/files/", stranger, bundle)
        assert not wrong["ok"] and wrong["status"] == 401
        assert posts(service, "JS-3") == 1                         # the 401 names no case; no retry of 413
        assert sum(1 for line in service.log_lines() if line.get("status") == 401) == 1
