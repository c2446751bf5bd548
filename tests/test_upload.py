"""The tus client: end to end through the real CLI, under connection cuts, and against odd servers."""
from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import pytest
import requests

from collector.upload import RetryPolicy, TusClient, UploadError, discover, preflight, send, terminate
from tests.transfer_kit import FakeTus, FaultProxy, Intake, free_port, jcdiag, make_bundle, one_json, self_signed_cert

FAST = RetryPolicy(base=0.01, cap=0.05, max_failures=12)


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    base = tmp_path_factory.mktemp("intake")
    with Intake(base / "data") as service:
        yield service


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, intake):
    """Two bundles sealed to the intake's generated key: a small one and a ~2.5 MiB one."""
    base = tmp_path_factory.mktemp("bundles")
    pub = intake.data / "support.pub.pem"
    small = make_bundle(base / "small", pub, case="00123")
    big = make_bundle(base / "big", pub, case="00123", random_bytes=2_500_000)
    return {"small": small, "big": big}


def fresh_bundle(tmp_path: Path, intake: Intake, case: str = "00123", size: int = 0) -> dict:
    return make_bundle(tmp_path / "b", intake.data / "support.pub.pem", case=case, random_bytes=size)


@pytest.fixture
def spool_env(tmp_path):
    return {"JCDIAG_SPOOL": str(tmp_path / "spool")}


# --------------------------------------------------------------------------- end to end


@pytest.mark.timeout(60)
def test_upload_fetch_open_end_to_end(intake, bundles, tmp_path, spool_env):
    bundle = bundles["small"]
    token = intake.token_file(tmp_path / "upload.tok", "--case", "00123")
    r = jcdiag("upload", bundle["path"], "--server", intake.url, "--token-file", token, "--json",
               env=spool_env)
    assert r.returncode == 0, r.stderr
    result = one_json(r)
    assert result["exit_code"] == 0
    (up,) = result["uploads"]
    assert up["status"] == "uploaded" and up["verified"] is True and up["bundle_id"] == bundle["bundle_id"]
    assert up["sha256"] == bundle["sha256"]
    assert list((tmp_path / "spool").iterdir()) == []          # confirmed: nothing left queued

    eng = intake.token_file(tmp_path / "eng.tok", "--engineer")
    got = jcdiag("fetch", bundle["bundle_id"].lower(), "--server", intake.url, "--token-file", eng,
                 "--to", tmp_path / "fetched", "--json")
    assert got.returncode == 0, got.stderr
    fetched = Path(one_json(got)["path"])
    assert fetched.read_bytes() == Path(bundle["path"]).read_bytes()            # byte-identical
    opened = jcdiag("open", fetched, "--key", intake.data / "support.key.pem", "--to", tmp_path / "o", "--json")
    assert opened.returncode == 0, opened.stderr
    assert (tmp_path / "o" / "SUMMARY.txt").is_file()
    human = jcdiag("fetch", bundle["bundle_id"], "--server", intake.url, "--token-file", eng,
                   "--to", tmp_path / "fetched")
    assert human.returncode == 0 and "already here" in human.stdout


def test_preflight_checks_server_and_token_quickly(intake, tmp_path):
    good = intake.token("--case", "00123")
    started = time.monotonic()
    info = preflight(intake.url, good, "00123")
    assert time.monotonic() - started < 2
    assert info.is_intake and info.tus_url == intake.url + "/files/"
    assert info.recipients == [(intake.data / "support.pub.pem").read_bytes()]
    with pytest.raises(UploadError) as other_case:
        preflight(intake.url, good, "00999")
    assert other_case.value.final and other_case.value.status == 403
    assert "case 00123, not case 00999" in str(other_case.value)
    with pytest.raises(UploadError) as bad:
        preflight(intake.url, good[:-4] + "AAAA", "00123")
    assert bad.value.final and bad.value.status == 401 and "--token-file" in str(bad.value)
    with pytest.raises(UploadError) as engineer:
        preflight(intake.url, intake.token("--engineer"), "00123")
    assert engineer.value.status == 403 and "upload token" in str(engineer.value)
    started = time.monotonic()
    with pytest.raises(UploadError) as down:
        preflight(f"http://127.0.0.1:{free_port()}", good, "00123")
    assert not down.value.final and "cannot reach" in str(down.value)
    assert time.monotonic() - started < 2


# --------------------------------------------------------------------------- fault injection


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [1, 2])
def test_every_upload_survives_random_connection_cuts(intake, tmp_path, seed):
    bundle = fresh_bundle(tmp_path, intake, size=2_000_000)
    chunk = 32 * 1024
    proxy = FaultProxy([intake.port], cuts=24, up_window=3 * chunk, seed=seed)
    engineer = intake.token("--engineer")
    before = intake.stats(engineer)
    try:
        result = send(bundle["path"], proxy.url, intake.token("--case", "00123"), chunk_size=chunk,
                      deadline=50, retry=FAST)
    finally:
        proxy.close()
    assert result.ok and result.verified, result.error
    assert result.sha256 == bundle["sha256"]
    assert proxy.cuts_done >= 20
    # client side: what went out again after each cut is at most the chunk in flight
    assert max(result.resends) <= chunk and sum(result.resends) == result.bytes_resent
    assert result.bytes_resent <= proxy.cuts_done * chunk
    assert result.bytes_sent == bundle["size"] + result.bytes_resent
    # server side: bytes received beyond the file itself (partial chunks dropped) likewise
    after = intake.stats(engineer)
    received = after.get("patch_bytes_received", 0) - before.get("patch_bytes_received", 0)
    assert bundle["size"] <= received <= bundle["size"] + proxy.cuts_done * chunk
    record = intake.get(f"/api/v1/bundles/{bundle['bundle_id']}", engineer).json()
    assert record["sha256"] == bundle["sha256"] and record["size"] == bundle["size"]
    content = intake.get(f"/api/v1/bundles/{bundle['bundle_id']}/content", engineer)
    assert hashlib.sha256(content.content).hexdigest() == bundle["sha256"]


def test_proxies_come_from_the_environment(intake, tmp_path, monkeypatch):
    bundle = fresh_bundle(tmp_path, intake, case="00124")
    proxy = FaultProxy([intake.port])            # forwards bytes; the intake reads absolute-form targets
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    try:
        result = send(bundle["path"], "http://intake.invalid:1", intake.token("--case", "00124"), retry=FAST)
    finally:
        proxy.close()
    assert result.ok and result.verified, result.error
    assert proxy.connections >= 1


def test_termination_cancels_an_unfinished_upload(intake):
    token = intake.token("--case", "00125")
    url = TusClient(token).create(intake.url + "/files/", 1000, {"bundle_id": "JCD-0000-0000-0125",
                                                                  "sha256": "ab" * 32})
    TusClient(token).patch(url, 0, b"x" * 100, True, final=False)
    terminate(url, token)
    with pytest.raises(UploadError) as gone:
        TusClient(token).head(url)
    assert gone.value.status == 404


# --------------------------------------------------------------------------- odd servers


@pytest.fixture
def fake():
    server = FakeTus()
    yield server
    server.close()


def test_plain_tus_server_completes_at_full_offset_without_whole_file_check(fake, bundles):
    bundle = bundles["small"]
    info = discover(fake.url)
    assert not info.is_intake and info.tus_url == fake.url
    result = send(bundle["path"], fake.url, "t", chunk_size=4096, retry=FAST)
    assert result.ok and not result.verified
    (data,) = fake.uploads.values()
    assert hashlib.sha256(bytes(data)).hexdigest() == bundle["sha256"]


def test_retry_after_on_503_and_429_is_honoured(fake, bundles):
    fake.faults = [("PATCH", 503, {"Retry-After": "1"}, b""), ("PATCH", 429, {"Retry-After": "1"}, b"")]
    started = time.monotonic()
    result = send(bundles["small"]["path"], fake.url, "t", chunk_size=1 << 20, retry=FAST)
    assert result.ok, result.error
    assert time.monotonic() - started >= 2.0
    patches = [t for m, _, t in fake.requests if m == "PATCH"]
    assert patches[1] - patches[0] >= 0.95 and patches[2] - patches[1] >= 0.95


def test_checksum_mismatch_and_offset_conflict_resume_from_head(fake, bundles):
    fake.faults = [("PATCH", 460, {}, b""), ("PATCH", 409, {}, b"")]
    result = send(bundles["small"]["path"], fake.url, "t", chunk_size=2048, retry=FAST)
    assert result.ok and result.attempts == 3
    assert [m for m, _, _ in fake.requests].count("HEAD") == 2


@pytest.mark.parametrize("status, words", [
    (401, "Ask support for a new upload token"),
    (403, "Check that --case matches"),
    (404, "not found"),
    (410, "gone"),
    (413, "refused the size"),
])
def test_final_errors_say_what_to_do_and_are_not_retried(fake, bundles, status, words):
    fake.faults = [("POST", status, {"Content-Type": "application/json"},
                    json.dumps({"error": "server says why"}).encode())]
    result = send(bundles["small"]["path"], fake.url, "t", retry=FAST)
    assert not result.ok and result.final and result.attempts == 1
    assert words in result.error and "server says why" in result.error
    assert [m for m, _, _ in fake.requests].count("POST") == 1


def test_error_bodies_are_read_with_a_bound(fake, bundles):
    fake.faults = [("POST", 403, {}, b"x" * (5 * 1024 * 1024))]
    result = send(bundles["small"]["path"], fake.url, "t", retry=FAST)
    assert result.final and len(result.error) < 1000


def test_redirects_are_not_followed_for_uploads(fake, bundles):
    fake.faults = [("POST", 307, {"Location": "http://127.0.0.1:1/elsewhere"}, b"")]
    result = send(bundles["small"]["path"], fake.url, "t", retry=FAST)
    assert result.final and "does not follow redirects" in result.error
    assert "http://127.0.0.1:1/elsewhere" in result.error


def test_gives_up_within_the_deadline_when_the_server_is_down(bundles):
    started = time.monotonic()
    result = send(bundles["small"]["path"], f"http://127.0.0.1:{free_port()}", "t", deadline=2,
                  retry=RetryPolicy(base=0.2, cap=1, max_failures=100))
    assert not result.ok and not result.final and "cannot reach" in result.error
    assert time.monotonic() - started < 5


def test_a_stale_upload_url_starts_a_new_upload(fake, bundles):
    result = send(bundles["small"]["path"], fake.url, "t", resume_url=fake.url + "gone", retry=FAST)
    assert result.ok and result.url != fake.url + "gone"


def test_intake_that_never_confirms_sha256_is_not_a_success(bundles):
    server = FakeTus(root=False, verify=False)
    try:
        result = send(bundles["small"]["path"], server.url.rstrip("/"), "t", retry=FAST, deadline=3)
    finally:
        server.close()
    assert not result.ok and "not confirmed" in result.error


def test_intake_confirmation_makes_it_verified(bundles):
    server = FakeTus(root=False, verify=True)
    try:
        result = send(bundles["small"]["path"], server.url.rstrip("/"), "t", retry=FAST)
    finally:
        server.close()
    assert result.ok and result.verified


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path)


def test_tls_is_verified_with_a_ca_bundle_and_never_downgraded(tmp_path, bundles, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert, key = _self_signed(tmp_path)
    server = FakeTus(tls=(cert, key))
    try:
        unknown = send(bundles["small"]["path"], server.url, "t", retry=FAST)
        assert unknown.final and "TLS verification" in unknown.error
        trusted = send(bundles["small"]["path"], server.url, "t", ca_bundle=str(cert), retry=FAST)
        assert trusted.ok, trusted.error
        server.faults = [("OPTIONS", 301, {"Location": "http://127.0.0.1:1/"}, b"")]
        with pytest.raises(UploadError) as downgrade:
            discover(server.url, ca_bundle=str(cert))
        assert "refusing to leave https" in str(downgrade.value)
    finally:
        server.close()


# --------------------------------------------------------------------------- a third-party client


@pytest.mark.timeout(60)
def test_intake_accepts_a_real_third_party_tus_client(intake, tmp_path):
    tusclient = pytest.importorskip("tusclient.client", reason="tuspy is not installed")
    bundle = fresh_bundle(tmp_path, intake, case="00777", size=300_000)
    client = tusclient.TusClient(intake.url + "/files/",
                                 headers={"Authorization": f"Bearer {intake.token('--case', '00777')}"})
    uploader = client.uploader(bundle["path"], chunk_size=64 * 1024, upload_checksum=True,
                               metadata={"bundle_id": bundle["bundle_id"], "case_id": "00777",
                                         "filename": Path(bundle["path"]).name, "sha256": bundle["sha256"]})
    uploader.upload()
    engineer = intake.token("--engineer")
    record = intake.get(f"/api/v1/bundles/{bundle['bundle_id']}", engineer).json()
    assert record["sha256"] == bundle["sha256"] and record["case_id"] == "00777"
    head = requests.head(uploader.url, headers={"Tus-Resumable": "1.0.0",
                                                "Authorization": f"Bearer {intake.token('--case', '00777')}"},
                         timeout=10)
    assert head.headers["Upload-Offset"] == str(bundle["size"])
    assert base64.b64decode(head.headers["Upload-Checksum-Verified"].split()[1]).hex() == bundle["sha256"]
