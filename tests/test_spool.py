"""The spool: durable, private, locked, capped; emptied only by confirmed uploads."""
from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.spool import Spool, SpoolBusy, SpoolError, default_spool_dir
from collector.upload import RetryPolicy, deliver, send_entry
from tests.transfer_kit import REPO, FakeTus, FaultProxy, Intake, jcdiag, make_bundle, one_json

FAST = RetryPolicy(base=0.01, cap=0.05, max_failures=3)


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    from collector.envelope import keygen
    return keygen(tmp_path_factory.mktemp("keys") / "support")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, keypair):
    return make_bundle(tmp_path_factory.mktemp("bundle"), keypair[1], case="00123")


# --------------------------------------------------------------------------- the spool itself


def test_default_folder_per_os_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("JCDIAG_SPOOL", str(tmp_path / "env"))
    assert default_spool_dir() == tmp_path / "env"
    assert Spool(tmp_path / "param").root == tmp_path / "param"           # the parameter wins
    monkeypatch.delenv("JCDIAG_SPOOL")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_spool_dir() == tmp_path / "state" / "jcdiag" / "spool"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_spool_dir() == Path("/var/lib/jcdiag/spool")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_spool_dir() == Path("/Library/Application Support/jcdiag/spool")
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("ProgramData", r"D:\ProgramData")
    assert str(default_spool_dir()).replace("/", "\\").endswith(r"D:\ProgramData\jcdiag\spool")


def test_entries_are_private_durable_and_deduplicated(tmp_path, bundle):
    spool = Spool(tmp_path / "spool")
    entry = spool.add(bundle["path"], server="http://x", token="tok1")
    assert stat.S_IMODE(spool.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.state_path.stat().st_mode) == 0o600
    state = json.loads(entry.state_path.read_text())
    assert state["sha256"] == bundle["sha256"] and state["case_id"] == "00123" and state["offset"] == 0
    assert (entry.dir / Path(bundle["path"]).name).read_bytes() == Path(bundle["path"]).read_bytes()
    again = spool.add(bundle["path"], server="http://x", token="tok2")
    assert again.dir == entry.dir and again.load().token == "tok2"
    assert [e.bundle_id for e in spool.entries()] == [bundle["bundle_id"]]
    assert not list(entry.dir.glob(".state.json.*"))                   # no temporary left over
    assert "token" not in entry.load().public()


def test_a_different_file_with_the_same_id_is_refused(tmp_path, bundle):
    spool = Spool(tmp_path / "spool")
    entry = spool.add(bundle["path"])
    entry.update(sha256="0" * 64)
    with pytest.raises(SpoolError, match="different file"):
        spool.add(bundle["path"])


def test_the_lock_keeps_two_runs_from_sending_one_bundle(tmp_path, bundle):
    spool = Spool(tmp_path / "spool")
    entry = spool.add(bundle["path"], server="http://127.0.0.1:9", token="t")
    with entry.locked():
        with pytest.raises(SpoolBusy):
            with spool.get(bundle["bundle_id"]).locked():
                pass
        result = send_entry(spool.get(bundle["bundle_id"]), retry=FAST)
        assert not result.ok and "being sent by another jcdiag run" in result.error
    # the lock dies with its process: a SIGKILLed holder does not block the next run
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from collector.spool import Spool;"
        "e = Spool(sys.argv[2]).get(sys.argv[3]); l = e.locked(); l.__enter__();"
        "print('held', flush=True); time.sleep(60)"), str(REPO), str(spool.root), bundle["bundle_id"]],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SpoolBusy):
            with entry.locked():
                pass
    finally:
        holder.kill()
        holder.wait(10)
    with entry.locked():
        pass


def test_caps_drop_the_oldest_with_a_logged_line(tmp_path, keypair, caplog):
    made = [make_bundle(tmp_path / f"b{i}", keypair[1], random_bytes=20_000) for i in range(3)]
    spool = Spool(tmp_path / "spool", max_bytes=10 ** 9)
    for item in made:
        spool.add(item["path"])
        time.sleep(0.01)
    oldest, middle, newest = (spool.get(m["bundle_id"]) for m in made)
    oldest.update(created_ts=time.time() - 40 * 86400)
    with caplog.at_level(logging.WARNING, logger="jcdiag.spool"):
        assert spool.enforce_caps() == [made[0]["bundle_id"]]
    assert "dropped spooled bundle " + made[0]["bundle_id"] in caplog.text and "older than 30 days" in caplog.text
    spool.max_bytes = made[2]["size"] + 10
    with caplog.at_level(logging.WARNING, logger="jcdiag.spool"):
        assert spool.enforce_caps() == [made[1]["bundle_id"]]
    assert "over its" in caplog.text
    assert [e.bundle_id for e in spool.entries()] == [made[2]["bundle_id"]]
    assert Path(made[0]["path"]).exists()                     # the output copy is never touched


def test_entry_stays_until_the_server_confirms_the_sha256(tmp_path, bundle):
    spool = Spool(tmp_path / "spool")
    unconfirming = FakeTus(root=False, verify=False)
    try:
        result = deliver(bundle["path"], unconfirming.url.rstrip("/"), "t", spool=spool, retry=FAST, deadline=3)
    finally:
        unconfirming.close()
    assert not result.ok and result.spooled
    state = spool.get(bundle["bundle_id"]).load()
    assert state.offset == bundle["size"] and state.attempts == 1 and "not confirmed" in state.last_error
    confirming = FakeTus(root=False, verify=True)
    try:
        result = deliver(bundle["path"], confirming.url.rstrip("/"), "t", spool=spool, retry=FAST)
    finally:
        confirming.close()
    assert result.ok and result.verified and spool.entries() == []


# --------------------------------------------------------------------------- through the CLI


@pytest.mark.timeout(60)
def test_intake_down_then_pending_finishes_it(tmp_path, keypair):
    data = tmp_path / "intake"
    intake = Intake(data)
    bundle = make_bundle(tmp_path / "b", keypair[1], case="00123")
    from intake.tokens import load_or_create_secret
    load_or_create_secret(data)                # the intake ran here before (intake token needs its data)
    token = intake.token_file(tmp_path / "tok", "--case", "00123")        # the intake is not running
    env = {"JCDIAG_SPOOL": str(tmp_path / "spool")}
    r = jcdiag("upload", bundle["path"], "--server", intake.url, "--token-file", token, "--json",
               "--deadline", "2", env=env)
    assert r.returncode == 4, r.stderr
    (up,) = one_json(r)["uploads"]
    assert up["status"] == "failed" and "cannot reach" in up["error"]
    kept = Path(up["spooled"])
    assert (kept / Path(bundle["path"]).name).read_bytes() == Path(bundle["path"]).read_bytes()
    human = jcdiag("upload", bundle["path"], "--server", intake.url, "--token-file", token,
                   "--deadline", "1", env=env)
    assert human.returncode == 4 and "Kept in the spool" in human.stderr and "upload --pending" in human.stderr
    with intake:
        done = jcdiag("upload", "--pending", "--json", env=env)
        assert done.returncode == 0, done.stderr
        (up,) = one_json(done)["uploads"]
        assert up["status"] == "uploaded" and up["verified"]
        assert not kept.exists()
        record = intake.get(f"/api/v1/bundles/{bundle['bundle_id']}", intake.token("--engineer")).json()
        assert record["sha256"] == bundle["sha256"]
        nothing = jcdiag("upload", "--pending", env=env)
        assert nothing.returncode == 0 and "Nothing waits in the spool" in nothing.stdout
    assert jcdiag("upload", env=env).returncode == 2


@pytest.mark.timeout(60)
def test_killed_uploader_resumes_from_the_servers_offset(tmp_path, keypair):
    chunk = 64 * 1024
    with Intake(tmp_path / "intake") as intake:
        bundle = make_bundle(tmp_path / "b", keypair[1], case="00123", random_bytes=1_500_000)
        token = intake.token_file(tmp_path / "tok", "--case", "00123")
        engineer = intake.token("--engineer")
        proxy = FaultProxy([intake.port], rate=400_000)          # slow enough to kill mid-transfer
        env = {"JCDIAG_SPOOL": str(tmp_path / "spool")}
        state_file = tmp_path / "spool" / bundle["bundle_id"] / "state.json"
        try:
            proc = subprocess.Popen([sys.executable, "-m", "collector", "upload", bundle["path"], "--server",
                                     proxy.url, "--token-file", str(token), "--chunk-size", str(chunk)],
                                    cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if state_file.exists() and json.loads(state_file.read_text()).get("offset", 0) >= 5 * chunk:
                    break
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            offset_at_kill = json.loads(state_file.read_text())["offset"]
            assert 0 < offset_at_kill < bundle["size"]
            proxy.set_rate(None)
            again = jcdiag("upload", "--pending", "--json", "--chunk-size", str(chunk), env=env)
        finally:
            proxy.close()
        assert again.returncode == 0, again.stderr
        (up,) = one_json(again)["uploads"]
        assert up["status"] == "uploaded" and up["verified"]
        assert up["bytes_sent"] <= bundle["size"] - offset_at_kill      # resumed, not restarted
        received = intake.stats(engineer)["patch_bytes_received"]
        assert bundle["size"] <= received < bundle["size"] + chunk           # re-sent: less than a chunk
        got = intake.get(f"/api/v1/bundles/{bundle['bundle_id']}/content", engineer).content
        assert got == Path(bundle["path"]).read_bytes()


def test_a_case_that_contradicts_the_bundle_is_an_error_not_a_spooled_upload(tmp_path, bundle):
    token = tmp_path / "t"
    token.write_text("tok\n")
    env = {"JCDIAG_SPOOL": str(tmp_path / "spool")}
    r = jcdiag("upload", bundle["path"], "--server", "http://127.0.0.1:9", "--token-file", token,
               "--case", "00999", env=env)
    assert r.returncode == 1 and "collected for case 00123, not 00999" in r.stderr
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").iterdir())

