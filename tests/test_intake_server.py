"""The intake as a production server: uvicorn on 127.0.0.1 with strict framing, timeouts, bounded
connections, quotas, a disk floor, payloads verified against their header, JSON logs, metrics,
notifications and TLS.  Every case runs against the real ``jcdiag intake serve`` subprocess;
raw sockets show what reaches the app."""
from __future__ import annotations

import base64
import hashlib
import json
import resource
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings, strategies as st

from collector import sevenzip
from collector.ids import new_bundle_id
from collector.upload import TusClient, UploadError, send
from intake.tus import HttpError, strict_length
from tests import hostile
from tests.test_intake import engineer, intake  # noqa: F401 - the module's intake and its engineer token
from tests.transfer_kit import REPO, Intake, make_bundle, raw_upload, self_signed_cert

TUS = {"Tus-Resumable": "1.0.0"}


def raw(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read until the server closes or ``wait`` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except socket.timeout:
            pass
        return out


def _complete(out: bytes) -> bool:
    head, _, body = out.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def uploads_on_disk(service: Intake) -> int:
    folder = service.data / "store" / "uploads"
    return len(list(folder.iterdir())) if folder.exists() else 0


def meta(bundle_id: str, sha: str = "ab" * 32, case: str | None = None) -> dict:
    return {"bundle_id": bundle_id, "sha256": sha, **({"case_id": case} if case else {})}


def engineer_bundles(service: Intake, engineer: str) -> set[str]:
    return {b["bundle_id"] for b in service.get("/api/v1/bundles", engineer).json()["bundles"]}


# --------------------------------------------------------------------------- strict framing


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=24))
def test_a_length_is_plain_ascii_digits_or_refused(value):
    if value and len(value) <= 19 and all(c in "0123456789" for c in value):
        assert strict_length(value, "Upload-Length") == int(value)
    else:
        with pytest.raises(HttpError) as refused:
            strict_length(value, "Upload-Length")
        assert refused.value.status == 400


def test_lengths_are_digits_only_and_framing_headers_come_once(intake):
    """What uvicorn's parser lets through, the app refuses; what it folds, the protocol refuses."""
    token = intake.token("--case", "S-1")
    auth = f"Authorization: Bearer {token}\r\n".encode()
    before = uploads_on_disk(intake)
    base = b"POST /files/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n" + auth
    metadata = b"Upload-Metadata: bundle_id " + base64.b64encode(new_bundle_id().encode()) + \
        b",sha256 " + base64.b64encode(b"ab" * 32) + b"\r\n"
    cases = {
        "underscore": b"Content-Length: 1_0\r\n\r\n0123456789",
        "plus": b"Content-Length: +10\r\n\r\n0123456789",
        "inner space": b"Content-Length: 1 0\r\n\r\n0123456789",
        "conflicting": b"Content-Length: 10\r\nContent-Length: 5\r\n\r\n0123456789",
        "repeated, equal": b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n",
        "list": b"Content-Length: 0, 0\r\n\r\n",
        "with chunked": b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Upload-Length 1_0": metadata + b"Upload-Length: 1_0\r\nContent-Length: 0\r\n\r\n",
        "Upload-Length +5": metadata + b"Upload-Length: +5\r\nContent-Length: 0\r\n\r\n",
        "Upload-Length 5e3": metadata + b"Upload-Length: 5e3\r\nContent-Length: 0\r\n\r\n",
        "Upload-Length twice": metadata + b"Upload-Length: 5\r\nUpload-Length: 5\r\nContent-Length: 0\r\n\r\n",
        "Upload-Length non-ASCII digit": metadata + "Upload-Length: ٣\r\nContent-Length: 0\r\n\r\n".encode(),
        "Authorization twice": auth + metadata + b"Upload-Length: 5\r\nContent-Length: 0\r\n\r\n",
    }
    for name, tail in cases.items():
        reply = raw(intake.port, base + tail)
        assert status_of(reply) == 400, (name, reply[:200])
    url = TusClient(token).create(intake.url + "/files/", 100, meta(new_bundle_id()))
    path = url.split("127.0.0.1:" + str(intake.port))[1].encode()
    for offset in (b"0_0", b"+0", b" 0 0", b"-0"):
        reply = raw(intake.port, b"PATCH " + path + b" HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n" + auth +
                    b"Content-Type: application/offset+octet-stream\r\nUpload-Offset: " + offset +
                    b"\r\nContent-Length: 3\r\n\r\nabc")
        assert status_of(reply) == 400, (offset, reply[:300])
    assert uploads_on_disk(intake) == before + 1                        # only the well-formed one
    assert requests.head(url, headers={**TUS, "Authorization": f"Bearer {token}"},
                         timeout=10).headers["Upload-Offset"] == "0"


# --------------------------------------------------------------------------- timeouts and connection bounds


@pytest.mark.timeout(90)
def test_slow_heads_and_trickled_bodies_are_cut_off(tmp_path):
    extra = ("--header-timeout", "1", "--body-timeout", "1", "--body-min-rate", "1K")
    with Intake(tmp_path / "data", extra=extra) as service:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            closed = False
            for i in range(20):                       # a header line every 0.4 s, never finishing
                try:
                    s.sendall(f"X-Slow-{i}: 1\r\n".encode())
                    s.settimeout(0.4)
                    if s.recv(100) == b"":
                        closed = True
                        break
                except socket.timeout:
                    continue
                except OSError:
                    closed = True
                    break
        assert closed and time.monotonic() - started < 4
        token = service.token("--case", "T-1")
        url = TusClient(token).create(service.url + "/files/", 4000, meta(new_bundle_id()))
        for pause, sends in ((2.0, 1), (0.5, 40)):    # a body that stops; one that trickles 20 B/s
            offset = TusClient(token).head(url)[0]       # a cut body without a checksum is kept (tus)
            head = (f"PATCH {url.split(str(service.port))[1]} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/offset+octet-stream\r\n"
                    f"Upload-Offset: {offset}\r\nContent-Length: {4000 - offset}\r\n\r\n").encode()
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", service.port), timeout=15) as s:
                s.sendall(head)
                reply = b""
                s.settimeout(pause)
                for _ in range(sends):
                    try:
                        s.sendall(b"x" * 10)
                        reply += s.recv(4096)
                        if reply:
                            break
                    except socket.timeout:
                        continue
                    except OSError:
                        break
                if not reply:
                    s.settimeout(10)
                    reply = s.recv(4096)
            assert status_of(reply) == 408, reply[:200]
            assert time.monotonic() - started < 9
        assert '"status":408' in service.log()
        assert requests.get(service.url + "/healthz", timeout=5).status_code == 200


def test_open_connections_are_bounded(tmp_path):
    with Intake(tmp_path / "data", extra=("--limit-concurrency", "3", "--header-timeout", "30")) as service:
        idle = [socket.create_connection(("127.0.0.1", service.port), timeout=5) for _ in range(3)]
        try:
            for s in idle:
                s.sendall(b"GET /healthz HTTP/1.1\r\n")         # heads left unfinished
            time.sleep(0.3)
            assert status_of(raw(service.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")) == 503
        finally:
            for s in idle:
                s.close()
        time.sleep(0.3)
        assert requests.get(service.url + "/healthz", timeout=5).status_code == 200


# --------------------------------------------------------------------------- quotas and disk


def test_quotas_per_case_are_a_clear_4xx(tmp_path):
    with Intake(tmp_path / "data", extra=("--max-open-uploads", "2", "--max-inflight", "10k")) as service:
        token, other = service.token("--case", "Q-1"), service.token("--case", "Q-2")
        client = TusClient(token)
        first = client.create(service.url + "/files/", 3000, meta(new_bundle_id()))
        client.create(service.url + "/files/", 3000, meta(new_bundle_id()))
        with pytest.raises(UploadError) as third:
            client.create(service.url + "/files/", 3000, meta(new_bundle_id()))
        assert third.value.status == 429 and "unfinished upload" in str(third.value)
        TusClient(other).create(service.url + "/files/", 3000, meta(new_bundle_id()))   # other cases go on
        with pytest.raises(UploadError) as too_big:
            TusClient(other).create(service.url + "/files/", 11 * 1024, meta(new_bundle_id()))
        assert too_big.value.status == 413 and "bytes in flight" in str(too_big.value)
        with pytest.raises(UploadError) as inflight:                # 3000 + 8000 > 10 KiB
            TusClient(other).create(service.url + "/files/", 8000, meta(new_bundle_id()))
        assert inflight.value.status == 429
        client.terminate(first)
        client.create(service.url + "/files/", 3000, meta(new_bundle_id()))         # a slot is free again
        metrics = requests.get(service.url + "/metrics", timeout=5).text
        assert "jcdiag_intake_quota_refusals_total 3.0" in metrics


def test_the_disk_floor_is_507(tmp_path):
    with Intake(tmp_path / "data", extra=("--min-free-disk", "1000T")) as service:
        with pytest.raises(UploadError) as full:
            TusClient(service.token("--case", "D-1")).create(service.url + "/files/", 100, meta(new_bundle_id()))
        assert full.value.status == 507 and "short of disk space" in str(full.value)
        assert "refused POST /files/: 507" in service.log()
        assert uploads_on_disk(service) == 0


def _small_file_limit():
    """In the intake process only: files may not grow past 1 MiB (writes then fail with EFBIG,
    as on a full disk; Python ignores SIGXFSZ)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))


def test_a_disk_that_fills_during_a_patch_is_507_logged_and_nothing_is_kept(tmp_path):
    with Intake(tmp_path / "data", preexec_fn=_small_file_limit) as service:
        token = service.token("--case", "D-2")
        client = TusClient(token)
        url = client.create(service.url + "/files/", 3 * 1024 * 1024, meta(new_bundle_id()))
        with pytest.raises(UploadError) as full:
            client.patch(url, 0, b"z" * (2 * 1024 * 1024), True, final=False)
        assert full.value.status == 507 and "ran out of disk space" in str(full.value)
        errors = [line for line in service.log_lines() if line["level"] == "error"]
        assert any("disk full" in line.get("msg", "") for line in errors)
        assert client.head(url)[0] == 0                          # nothing partial was kept
        assert not list((service.data / "store" / ".tmp").iterdir())
        offset, _ = client.patch(url, 0, b"z" * 1000, True, final=False)   # a chunk that fits still goes
        assert offset == 1000


# --------------------------------------------------------------------------- verification at completion


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(180)
def test_payloads_must_match_their_header_and_a_header_bomb_costs_no_memory(intake, engineer, tmp_path):
    token = intake.token("--case", "42")

    def upload(path: Path, bundle_id: str) -> None:
        data = path.read_bytes()
        raw_upload(intake.url, token, data, meta(bundle_id, hashlib.sha256(data).hexdigest(), "42"))

    wrong = {"sha256": "0" * 64}
    for name, edit in (("sha", lambda h: h["payload"].update(wrong)),
                       ("size", lambda h: h["payload"].update(size=h["payload"]["size"] + 1)),
                       ("huge", lambda h: h["payload"].update(size=2 ** 40))):
        bundle_id = new_bundle_id()
        bad = hostile.simple(tmp_path / name, edit=lambda h, e=edit, b=bundle_id: (e(h), h.update(bundle_id=b)))
        with pytest.raises(UploadError) as refused:
            upload(bad, bundle_id)
        assert refused.value.status == 422 and "payload does not match" in str(refused.value), name
        assert bundle_id not in engineer_bundles(intake, engineer)
        assert not (intake.data / "store" / "bundles" / bundle_id).exists()

    bomb_id = new_bundle_id()
    zeros = tmp_path / "zeros.json"
    with open(zeros, "wb") as fh:                 # 800 MiB of NUL bytes, LZMA2: a few hundred KiB
        fh.truncate(800 * 1024 * 1024)
    payload = hostile.payload(tmp_path / "bomb.payload", {"SUMMARY.txt": b"x\n"})
    bomb = tmp_path / "bomb.7z"
    sevenzip.write_archive([(zeros, "bundle.json"), (payload, "payload.7z")], bomb, password=None)
    zeros.unlink()
    assert bomb.stat().st_size < 1024 * 1024
    before = _vm_hwm_kib(intake.pid)
    with pytest.raises(UploadError) as refused:
        upload(bomb, bomb_id)
    assert refused.value.status == 422 and "bundle.json is 838860800 bytes" in str(refused.value)
    assert "/.tmp/" not in str(refused.value)                         # no server path in the answer
    assert _vm_hwm_kib(intake.pid) - before < 20 * 1024               # peak RSS grew under 20 MiB

    good_id = new_bundle_id()
    good = hostile.simple(tmp_path / "good", edit=lambda h: h.update(bundle_id=good_id))
    upload(good, good_id)
    record = intake.get(f"/api/v1/bundles/{good_id}", engineer).json()
    assert record["verified"] is True and record["size"] == good.stat().st_size
    metrics = requests.get(intake.url + "/metrics", timeout=5).text
    assert "jcdiag_intake_verification_failures_total" in metrics


def _upload_all_but_last(client: TusClient, url: str, data: bytes, chunk: int) -> int:
    offset = 0
    while len(data) - offset > chunk:
        offset, _ = client.patch(url, offset, data[offset:offset + chunk], True, final=False)
    return offset


def test_concurrent_final_patches_publish_one_record_with_its_file(intake, engineer, tmp_path):
    bundle = make_bundle(tmp_path / "b", intake.data / "support.pub.pem", case="R-1", random_bytes=200_000)
    data = Path(bundle["path"]).read_bytes()
    token = intake.token("--case", "R-1")
    client = TusClient(token)
    info = meta(bundle["bundle_id"], bundle["sha256"], "R-1")
    urls = [client.create(intake.url + "/files/", len(data), info) for _ in range(2)]
    offsets = [_upload_all_but_last(client, url, data, 64 * 1024) for url in urls]
    outcomes: list = []

    def last(url, offset):
        try:
            outcomes.append(TusClient(token).patch(url, offset, data[offset:], True, final=True))
        except UploadError as exc:
            outcomes.append(exc)

    # the same upload's last chunk twice at once, and another upload of the same bundle at once
    threads = [threading.Thread(target=last, args=(urls[0], offsets[0])),
               threading.Thread(target=last, args=(urls[0], offsets[0])),
               threading.Thread(target=last, args=(urls[1], offsets[1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done = [o for o in outcomes if not isinstance(o, UploadError)]
    refused = [o for o in outcomes if isinstance(o, UploadError)]
    assert done and all(o[1] == bundle["sha256"] for o in done)
    assert all(e.status in (403, 409) for e in refused), [str(e) for e in refused]
    folder = next((intake.data / "store" / "bundles" / bundle["bundle_id"]).iterdir())
    record = json.loads((folder / "record.json").read_text())
    assert (intake.data / "store" / record["object"]).is_file()
    assert [p.name for p in folder.glob("*.7z")] == [Path(record["object"]).name]   # losers left no file
    got = intake.get(f"/api/v1/bundles/{bundle['bundle_id']}/content?case=R-1", engineer).content
    assert got == data

    # uploading it again is answered with a status tus-js-client does not retry (5xx, 409, 423)
    again = requests.post(intake.url + "/files/", headers={**TUS, "Authorization": f"Bearer {token}",
                                                           "Upload-Length": str(len(data)),
                                                           "Upload-Metadata": _metadata(info)}, timeout=10)
    assert again.status_code == 403 and again.json()["already_uploaded"] is True
    assert again.json()["sha256"] == bundle["sha256"]
    assert again.status_code < 500 and again.status_code not in (409, 423)
    assert send(bundle["path"], intake.url, token).verified                 # our client calls it done


def _metadata(values: dict) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


# --------------------------------------------------------------------------- operations


def test_one_json_log_line_per_request_with_control_characters_escaped_and_no_token(intake):
    token = intake.token("--case", "L-1")
    marker = "zz-log-probe"
    reply = raw(intake.port, f"GET /{marker}%1b%5b2J%0a%7f%c2%9b%e2%80%a8{{\"level\":\"x\"}} HTTP/1.1\r\n"
                             f"Host: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    assert status_of(reply) == 404
    requests.get(intake.url + "/api/v1/token/check?case=L-1", headers={"Authorization": f"Bearer {token}"},
                 timeout=5)
    deadline = time.monotonic() + 10                      # the line is written as the response ends
    while time.monotonic() < deadline and not any(line.get("path", "").startswith("/api/v1/token/check")
                                                  and line.get("case") == "L-1" for line in intake.log_lines()):
        time.sleep(0.05)
    text = intake.log()
    assert "\x1b" not in text and "\x7f" not in text and "\u2028" not in text and "\x9b" not in text
    assert token not in text and token.split(".")[2] not in text
    lines = intake.log_lines()                            # every line is one JSON object
    probe = [line for line in lines if marker in line.get("path", "")]
    assert len(probe) == 1 and probe[0]["status"] == 404 and probe[0]["method"] == "GET"
    check = [line for line in lines if line.get("path", "").startswith("/api/v1/token/check")
             and line.get("case") == "L-1"][-1]
    assert check["case"] == "L-1" and {"bytes_in", "bytes_out", "duration_ms"} <= set(check)


def test_health_readiness_and_metrics(intake):
    assert requests.get(intake.url + "/healthz", timeout=5).json() == {"ok": True}
    ready = requests.get(intake.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["ok"] is True
    metrics = requests.get(intake.url + "/metrics", timeout=5)
    assert metrics.headers["Content-Type"].startswith("text/plain")
    for name in ("uploads_created", "uploads_completed", "uploads_failed", "patch_bytes_stored",
                 "verification_failures", "quota_refusals", "disk_refusals"):
        assert f"jcdiag_intake_{name}_total" in metrics.text


class Receiver:
    """A ticketing system's webhook on 127.0.0.1 that fails its first ``failures`` calls."""

    def __init__(self, failures: int):
        self.events: list[dict] = []
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls += 1
                status = 500 if receiver.calls <= failures else 204
                if status == 204:
                    receiver.events.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_notify_url_gets_one_event_per_verified_bundle_through_failures(tmp_path):
    receiver = Receiver(failures=2)
    try:
        extra = ("--notify-url", receiver.url, "--notify-delay", "0.1", "--public-url", "https://intake.example/")
        with Intake(tmp_path / "data", extra=extra) as service:
            bundle = make_bundle(tmp_path / "b", service.data / "support.pub.pem", case="N-1")
            token = service.token("--case", "N-1")
            bad = hostile.simple(tmp_path / "bad", edit=lambda h: h["payload"].update(sha256="1" * 64))
            with pytest.raises(UploadError):
                data = bad.read_bytes()
                raw_upload(service.url, token, data, meta(json.loads(
                    subprocess.run([sys.executable, "-m", "collector", "inspect", str(bad), "--json"],
                                   capture_output=True, text=True, cwd=REPO, timeout=60).stdout)["bundle_id"],
                    hashlib.sha256(data).hexdigest(), "42"))
            data = Path(bundle["path"]).read_bytes()
            url = TusClient(token).create(service.url + "/files/", len(data),
                                          meta(bundle["bundle_id"], bundle["sha256"], "N-1"))
            session = requests.Session()
            session.headers["Host"] = "evil.example"          # the uploader's Host never names the bundle
            offset, verified = TusClient(token, session=session).patch(url, 0, data, True, final=True)
            assert offset == len(data) and verified == bundle["sha256"]
            deadline = time.monotonic() + 15
            while not receiver.events and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            assert len(receiver.events) == 1 and receiver.calls == 3          # two failures, then delivered
            event = receiver.events[0]
            assert event["event"] == "bundle.verified" and event["bundle_id"] == bundle["bundle_id"]
            assert event["case_id"] == "N-1" and event["sha256"] == bundle["sha256"]
            assert event["content_url"] == f"https://intake.example/api/v1/bundles/{bundle['bundle_id']}/content?case=N-1"
            assert event["content_path"] == f"/api/v1/bundles/{bundle['bundle_id']}/content?case=N-1"
    finally:
        receiver.close()


def test_tls_with_a_certificate_made_by_the_test(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    bundle_dir = tmp_path / "b"
    with Intake(tmp_path / "data", tls=(cert, key)) as service:
        assert service.url.startswith("https://")
        bundle = make_bundle(bundle_dir, service.data / "support.pub.pem", case="TLS-1")
        result = send(bundle["path"], service.url, service.token("--case", "TLS-1"), ca_bundle=str(cert))
        assert result.ok and result.verified, result.error
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(service.url + "/healthz", timeout=5, verify=True)        # not trusted by default
        plain = raw(service.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", wait=3)
        assert b'"ok"' not in plain                                            # no plain HTTP on the port
        engineer = service.token("--engineer")
        assert service.get(f"/api/v1/bundles/{bundle['bundle_id']}", engineer).json()["case_id"] == "TLS-1"
    bad = subprocess.run([sys.executable, "-m", "collector", "intake", "serve", "--port", "0", "--data",
                          str(tmp_path / "d2"), "--tls-cert", str(key), "--tls-key", str(key)],
                         capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL)
    assert bad.returncode == 1 and "cannot use --tls-cert/--tls-key" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_several_workers_serve_one_port(tmp_path):
    with Intake(tmp_path / "data", extra=("--workers", "2")) as service:
        deadline = time.monotonic() + 20
        while service.log().count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = {line["msg"] for line in service.log_lines() if "Started server process" in line.get("msg", "")}
        assert len(pids) == 2
        for _ in range(6):
            assert requests.get(service.url + "/healthz", headers={"Connection": "close"}, timeout=5).ok
        bundle = make_bundle(tmp_path / "b", service.data / "support.pub.pem", case="W-1")
        assert send(bundle["path"], service.url, service.token("--case", "W-1")).verified


_PROBE = """
import json, sys
from click.testing import CliRunner
from collector.cli import main
result = CliRunner().invoke(main, sys.argv[1:])
heavy = ("starlette", "uvicorn", "jwt", "prometheus_client", "boto3", "intake")
print(json.dumps({"code": result.exit_code, "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""


def test_help_and_collect_never_import_the_server_stack(tmp_path):
    from tests.hosts import linux_host
    root = linux_host(tmp_path / "root")
    for args in (["--help"], ["collect", "--root", str(root), "--platform", "linux", "--password-file",
                              str(_password(tmp_path)), "--output", str(tmp_path / "out"), "--yes", "--json"]):
        r = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                           cwd=REPO, stdin=subprocess.DEVNULL, env={**_env(tmp_path)})
        probe = json.loads(r.stdout.strip().splitlines()[-1])
        assert probe["code"] in (0, 3) and probe["loaded"] == [], (args[0], probe, r.stderr[-500:])


def _password(tmp_path: Path) -> Path:
    path = tmp_path / "pw"
    path.write_text("correct horse battery staple\n")
    return path


def _env(tmp_path: Path) -> dict:
    import os
    return {**os.environ, "JCDIAG_SPOOL": str(tmp_path / "spool")}


def test_a_busy_port_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = subprocess.run([sys.executable, "-m", "collector", "intake", "serve", "--port",
                            str(busy.getsockname()[1]), "--data", str(tmp_path / "d")],
                           capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "cannot listen on 127.0.0.1" in r.stderr and "choose another --port" in r.stderr
    assert "Traceback" not in r.stderr
