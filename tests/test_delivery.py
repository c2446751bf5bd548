"""Delivery that never gets stuck (issue 13), through the real CLI.

Each case of the issue against the reference intake on 127.0.0.1, the plain-tus
ones against a third-party server (tuspyserver from PyPI, tests/tuspy_app.py),
and the spool's state machine under 20 random connection cuts across a mixed
spool of pending, held and broken entries.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from collector.spool import DamagedState, Spool, SpoolState
from collector.upload import RetryPolicy, fetch_bundle, send
from tests.hosts import HOSTS
from tests.transfer_kit import FakeTus, FaultProxy, Intake, TuspyServer, free_port, jcdiag, make_bundle, one_json

FAST = RetryPolicy(base=0.01, cap=0.05, max_failures=12)


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    with Intake(tmp_path_factory.mktemp("intake") / "data") as service:
        yield service


@pytest.fixture(scope="module")
def pub(intake) -> Path:
    return intake.data / "support.pub.pem"


@pytest.fixture
def spool_dir(tmp_path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def env(spool_dir):
    return {"JCDIAG_SPOOL": str(spool_dir)}


def bundle_for(tmp_path: Path, pub: Path, case: str, name: str = "b", size: int = 0) -> dict:
    return make_bundle(tmp_path / name, pub, case=case, random_bytes=size)


def entry_dirs(spool_dir: Path) -> list[Path]:
    return [p for p in spool_dir.iterdir() if p.is_dir()] if spool_dir.exists() else []


def listed(env: dict) -> dict[str, dict]:
    r = jcdiag("spool", "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return {e["bundle_id"]: e for e in one_json(r)["entries"]}


# --------------------------------------------------------------------------- 1. permanent refusals


@pytest.mark.timeout(120)
def test_a_refused_bundle_is_held_never_retried_and_released_by_spool_retry(intake, pub, tmp_path, env):
    bundle = bundle_for(tmp_path, pub, "A-1")
    bid = bundle["bundle_id"]
    wrong = intake.token_file(tmp_path / "b.tok", "--case", "B-2")
    r = jcdiag("upload", bundle["path"], "--server", intake.url, "--token-file", wrong, "--json", env=env)
    assert r.returncode == 4, r.stderr
    (up,) = one_json(r)["uploads"]
    assert up["status"] == "held" and up["http_status"] == 403
    refusals = intake.log().count("refused POST /files/: 403")
    for _ in range(2):
        p = jcdiag("upload", "--pending", "--json", env=env)
        assert p.returncode == 0, p.stderr                      # nothing sendable failed
        out = one_json(p)
        assert out["held"] == [bid]
        (held,) = out["uploads"]
        assert held["status"] == "held" and "B-2" in held["error"] and "spool retry" in held["action"]
    assert intake.log().count("refused POST /files/: 403") == refusals      # never retried on its own
    human = jcdiag("upload", "--pending", env=env)
    assert human.returncode == 0 and f"Held {bid}" in human.stderr and "To go on:" in human.stderr
    entry = listed(env)[bid]
    assert entry["status"] == "held" and entry["held_status"] == 403 and "--token-file" in entry["action"]
    assert "token" not in entry and entry["has_token"] is True              # the token is never printed
    text = jcdiag("spool", "list", env=env)
    assert f"{bid}  held" in text.stdout and "to go on:" in text.stdout

    good = intake.token_file(tmp_path / "a.tok", "--case", "A-1")
    retried = jcdiag("spool", "retry", bid.lower(), "--token-file", good, "--json", env=env)
    assert retried.returncode == 0, retried.stderr
    done = one_json(retried)["upload"]
    assert done["status"] == "uploaded" and done["verified"]
    assert listed(env) == {}


@pytest.mark.timeout(120)
def test_drop_asks_for_yes_and_removes_only_the_spooled_copy(intake, pub, tmp_path, env):
    bundle = bundle_for(tmp_path, pub, "D-1")
    wrong = intake.token_file(tmp_path / "x.tok", "--case", "D-2")
    assert jcdiag("upload", bundle["path"], "--server", intake.url, "--token-file", wrong, env=env).returncode == 4
    refused = jcdiag("spool", "drop", bundle["bundle_id"], env=env)          # no terminal: no prompt
    assert refused.returncode == 1 and "--yes" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert bundle["bundle_id"] in listed(env)
    dropped = jcdiag("spool", "drop", bundle["bundle_id"], "--yes", "--json", env=env)
    assert dropped.returncode == 0 and one_json(dropped)["dropped"] == bundle["bundle_id"]
    assert listed(env) == {} and Path(bundle["path"]).exists()
    unknown = jcdiag("spool", "drop", "JCD-0000-0000-0000", "--yes", env=env)
    assert unknown.returncode == 1 and "not in the spool" in unknown.stderr
    bad = jcdiag("spool", "retry", "not-an-id", "--json", env=env)
    assert bad.returncode == 1 and "not a bundle ID" in one_json(bad)["error"]


# --------------------------------------------------------------------------- 2. a token per bundle


@pytest.mark.timeout(120)
def test_a_later_token_applies_only_to_its_case_and_releases_its_held_bundles(intake, pub, tmp_path, env,
                                                                              spool_dir):
    a = bundle_for(tmp_path, pub, "A-7", "a")
    b = bundle_for(tmp_path, pub, "B-7", "b")
    expired = intake.token_file(tmp_path / "exp.tok", "--case", "A-7", "--ttl", "1s")
    time.sleep(1.2)
    r = jcdiag("upload", a["path"], "--server", intake.url, "--token-file", expired, "--json", env=env)
    assert r.returncode == 4 and one_json(r)["uploads"][0]["http_status"] == 401
    # B waits in the spool with its own, valid token (spooled by a run that could not reach the server)
    Spool(spool_dir).add(b["path"], server=intake.url, case_id="B-7", token=intake.token("--case", "B-7"))
    assert {e["status"] for e in listed(env).values()} == {"held", "pending"}

    fresh = intake.token_file(tmp_path / "a.tok", "--case", "A-7")
    p = jcdiag("upload", "--pending", "--token-file", fresh, "--json", env=env)
    assert p.returncode == 0, p.stderr
    ups = {u["bundle_id"]: u for u in one_json(p)["uploads"]}
    assert ups[a["bundle_id"]]["status"] == "uploaded" and ups[b["bundle_id"]]["status"] == "uploaded"
    assert "this token is for case A-7, not case B-7" not in intake.log()     # B kept its own token
    assert listed(env) == {}


# --------------------------------------------------------------------------- 3. broken entries


@pytest.mark.timeout(180)
def test_broken_entries_are_held_with_their_reason_and_never_stop_the_others(intake, pub, tmp_path, env,
                                                                             spool_dir):
    made = {name: bundle_for(tmp_path, pub, "M-1", name) for name in
            ("good", "old", "missing", "corrupt", "outside", "linked")}
    spool = Spool(spool_dir)
    token = intake.token("--case", "M-1")
    entries = {name: spool.add(b["path"], server=intake.url, case_id="M-1", token=token)
               for name, b in made.items()}

    def rewrite(name, change):
        state = json.loads(entries[name].state_path.read_text())
        change(state)
        entries[name].state_path.write_text(json.dumps(state))

    rewrite("old", lambda s: [s.pop(k) for k in ("status", "held_status", "held_reason", "next_attempt_ts")])
    (entries["missing"].dir / Path(made["missing"]["path"]).name).unlink()
    entries["corrupt"].state_path.write_bytes(entries["corrupt"].state_path.read_bytes()[:40])
    secret = tmp_path / "secret.7z"
    secret.write_bytes(b"never to be uploaded")
    rewrite("outside", lambda s: s.update(filename="../../secret.7z"))
    linked = entries["linked"].dir / Path(made["linked"]["path"]).name
    linked.unlink()
    linked.symlink_to(made["linked"]["path"])                 # a link, even to the right bytes, is not sent

    r = jcdiag("upload", "--pending", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = one_json(r)
    ups = {u["bundle_id"]: u for u in out["uploads"]}
    ids = {name: b["bundle_id"] for name, b in made.items()}
    assert ups[ids["good"]]["status"] == "uploaded" and ups[ids["good"]]["verified"]
    assert ups[ids["old"]]["status"] == "uploaded"             # a state from an older version still goes
    assert set(out["held"]) == {ids["missing"], ids["corrupt"], ids["outside"], ids["linked"]}
    assert "missing" in ups[ids["missing"]]["error"]
    assert "not valid JSON" in ups[ids["corrupt"]]["error"] and "spool drop" in ups[ids["corrupt"]]["action"]
    assert "plain file name" in ups[ids["outside"]]["error"]
    assert "not a regular file" in ups[ids["linked"]]["error"]
    now = listed(env)
    assert set(now) == set(out["held"]) and {e["status"] for e in now.values()} == {"held"}

    # a collect --upload beside those entries uploads its own bundle, exits 0/3, and says its ID
    root = HOSTS["linux"](tmp_path / "root")
    token_file = intake.token_file(tmp_path / "m.tok", "--case", "M-1")
    c = jcdiag("collect", "--root", root, "--platform", "linux", "--case", "M-1", "--server", intake.url,
               "--token-file", token_file, "--upload", "--output", tmp_path / "out", "--json", "--yes", env=env)
    assert c.returncode in (0, 3), c.stderr
    result = one_json(c)
    assert result["bundle_id"] and result["upload"]["status"] == "uploaded"
    assert {p["status"] for p in result["pending_uploads"]} <= {"held"}
    for name in ("missing", "corrupt", "outside", "linked"):
        assert jcdiag("spool", "drop", ids[name], "--yes", env=env).returncode == 0
    assert entry_dirs(spool_dir) == [] and secret.read_bytes() == b"never to be uploaded"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                    max_size=6),
                        max_leaves=12),
       overrides=st.dictionaries(st.sampled_from(["bundle_id", "filename", "sha256", "size", "server",
                                                  "status", "held_status", "offset", "token", "tus_url"]),
                                 st.none() | st.integers() | st.text(max_size=40) | st.booleans(), max_size=4))
def test_any_state_file_is_either_valid_or_damaged_never_a_crash(raw, overrides):
    base = {"bundle_id": "JCD-0000-0000-0001", "filename": "JCD-0000-0000-0001.7z", "sha256": "a" * 64,
            "size": 10}
    for candidate in (raw, {**base, **overrides}):
        try:
            state = SpoolState.from_dict(candidate, folder="JCD-0000-0000-0001")
        except DamagedState:
            continue
        assert "/" not in state.filename and "\\" not in state.filename and state.filename not in ("..", ".")
        assert state.status in ("pending", "held") and state.size >= 0 and state.offset >= 0


# --------------------------------------------------------------------------- 4. a full spool disk


@pytest.mark.timeout(180)
def test_a_full_spool_disk_still_uploads_or_keeps_the_bundle_and_its_id(intake, pub, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from collector import cli, spool as spool_mod

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_mod, "_place", full)
    spool_dir = tmp_path / "spool"
    monkeypatch.setenv("JCDIAG_SPOOL", str(spool_dir))
    root = HOSTS["linux"](tmp_path / "root")
    token = intake.token_file(tmp_path / "f.tok", "--case", "F-1")
    common = ["collect", "--root", str(root), "--platform", "linux", "--case", "F-1", "--upload",
              "--token-file", str(token), "--yes"]
    up = CliRunner().invoke(cli.main, common + ["--server", intake.url, "--output", str(tmp_path / "o1"),
                                                "--json"])
    assert up.exit_code in (0, 3), up.output
    result = json.loads(up.stdout)
    assert result["bundle_id"] and result["upload"]["status"] == "uploaded" and result["upload"]["verified"]
    assert entry_dirs(spool_dir) == []

    down = f"http://127.0.0.1:{free_port()}"
    off = CliRunner().invoke(cli.main, common + ["--server", down, "--recipient", str(pub),
                                                 "--output", str(tmp_path / "o2"), "--json"])
    assert off.exit_code == 4, off.output
    result = json.loads(off.stdout)
    assert result["bundle_id"] and Path(result["path"]).is_file()
    assert result["upload"]["spooled"] is None and "No space left on device" in result["upload"]["error"]
    assert entry_dirs(spool_dir) == []
    human = CliRunner().invoke(cli.main, common + ["--server", down, "--recipient", str(pub),
                                                   "--output", str(tmp_path / "o3")])
    assert human.exit_code == 4 and "Bundle ID: JCD-" in human.stdout


# --------------------------------------------------------------------------- 5. plain tus servers


@pytest.fixture(scope="module")
def tuspy(tmp_path_factory):
    pytest.importorskip("tuspyserver", reason="tuspyserver (dev extra) is not installed")
    pytest.importorskip("uvicorn", reason="uvicorn (dev extra) is not installed")
    with TuspyServer(tmp_path_factory.mktemp("tuspy")) as server:
        yield server


@pytest.mark.timeout(120)
def test_a_third_party_tus_server_at_files_slash_needs_no_token_and_gets_none(tuspy, pub, tmp_path, env):
    bundle = bundle_for(tmp_path, pub, "P-1", size=100_000)
    before = len(tuspy.requests())
    r = jcdiag("upload", bundle["path"], "--server", tuspy.url, "--json", env=env)
    assert r.returncode == 0, r.stderr
    (up,) = one_json(r)["uploads"]
    assert up["status"] == "uploaded" and up["verified"] is False and up["url"].startswith(tuspy.url)
    assert tuspy.stored(up["url"]) == Path(bundle["path"]).read_bytes()
    seen = tuspy.requests()[before:]
    assert seen and not any(s["authorization"] for s in seen)             # no made-up bearer token
    assert all(s["path"].startswith("/files/") for s in seen)              # the slash was kept
    (post,) = [s for s in seen if s["method"] == "POST"]
    assert post["length"] == bundle["size"]                                # creation-with-upload
    assert entry_dirs(Path(env["JCDIAG_SPOOL"])) == []


@pytest.mark.timeout(180)
def test_collect_upload_to_a_third_party_server_offline_first_then_through_cuts(tuspy, pub, tmp_path, env,
                                                                                 spool_dir):
    root = HOSTS["linux"](tmp_path / "root")
    attach = tmp_path / "capture.bin"
    attach.write_bytes(os.urandom(600_000))
    chunk = 64 * 1024
    port = free_port()                                          # nothing answers there yet
    server = f"http://127.0.0.1:{port}/files/"
    c = jcdiag("collect", "--root", root, "--platform", "linux", "--case", "P-2", "--server", server,
               "--upload", "--recipient", pub, "--attach", attach, "--output", tmp_path / "out", "--json",
               "--yes", env=env)
    assert c.returncode == 4, c.stderr
    result = one_json(c)
    assert result["upload"]["spooled"] and "cannot reach" in result["upload"]["error"]
    proxy = FaultProxy([tuspy.port], cuts=6, up_window=3 * chunk, seed=5, port=port)
    try:
        for _ in range(6):
            p = jcdiag("upload", "--pending", "--json", "--chunk-size", str(chunk), env=env)
            if p.returncode == 0:
                break
    finally:
        proxy.close()
    assert p.returncode == 0, p.stderr
    (up,) = one_json(p)["uploads"]
    assert up["status"] == "uploaded" and tuspy.stored(up["url"]) == Path(result["path"]).read_bytes()
    assert up["bytes_resent"] <= proxy.cuts_done * chunk
    assert entry_dirs(spool_dir) == []


def test_authorization_goes_only_to_the_servers_origin_and_never_without_a_token(pub, tmp_path):
    bundle = bundle_for(tmp_path, pub, "O-9", size=20_000)
    fake = FakeTus(extensions="creation,creation-with-upload,termination,checksum")
    fake.location_origin = f"http://localhost:{fake.port}"     # the upload lives on another origin
    try:
        result = send(bundle["path"], fake.url, "secret-token", chunk_size=8192, retry=FAST)
        assert result.ok, result.error
        sent = [(method, auth) for method, _, auth, _ in fake.seen]
        assert ("POST", "Bearer secret-token") in sent
        assert [a for m, a in sent if m in ("PATCH", "HEAD")] and \
            all(a is None for m, a in sent if m in ("PATCH", "HEAD"))
        post = [length for method, _, _, length in fake.seen if method == "POST"]
        assert post == [8192]                                   # the first chunk rode on the POST
        fake.seen.clear()
        assert send(bundle["path"], fake.url, None, chunk_size=8192, retry=FAST).ok
        assert all(auth is None for _, _, auth, _ in fake.seen)
    finally:
        fake.close()


# --------------------------------------------------------------------------- offline-first collect


@pytest.mark.timeout(180)
def test_collect_upload_offline_seals_to_the_keys_cached_at_the_last_contact(tmp_path, env, spool_dir):
    root = HOSTS["linux"](tmp_path / "root")
    port, data = free_port(), tmp_path / "data"
    args = ["collect", "--root", root, "--platform", "linux", "--case", "O-1", "--server",
            f"http://127.0.0.1:{port}", "--upload", "--json", "--yes"]
    with Intake(data, port=port) as intake:
        token = intake.token_file(tmp_path / "o.tok", "--case", "O-1")
        online = jcdiag(*args, "--token-file", token, "--output", tmp_path / "o1", env=env)
        assert online.returncode in (0, 3), online.stderr
    started = time.monotonic()
    offline = jcdiag(*args, "--token-file", token, "--output", tmp_path / "o2", env=env)
    assert offline.returncode == 4, offline.stderr
    assert time.monotonic() - started < 60
    result = one_json(offline)
    assert result["upload"]["spooled"] and "cannot reach" in result["upload"]["error"]
    header = one_json(jcdiag("inspect", result["path"], "--json"))
    first = one_json(jcdiag("inspect", one_json(online)["path"], "--json"))
    assert [r["key_id"] for r in header["recipients"]] == [r["key_id"] for r in first["recipients"]]
    with Intake(data, port=port):
        p = jcdiag("upload", "--pending", "--json", env=env)
        assert p.returncode == 0, p.stderr
        assert one_json(p)["uploads"][0]["status"] == "uploaded"
    assert entry_dirs(spool_dir) == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("server", ["refused", "dns"])
def test_collect_upload_with_no_key_known_fails_before_collecting(tmp_path, env, server):
    url = f"http://127.0.0.1:{free_port()}" if server == "refused" else "http://jcdiag-intake.invalid"
    token = tmp_path / "t.tok"
    token.write_text("whatever\n")
    root = HOSTS["linux"](tmp_path / "root")
    r = jcdiag("collect", "--root", root, "--platform", "linux", "--server", url, "--token-file", token,
               "--upload", "--output", tmp_path / "out", "--json", "--yes", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    error = one_json(r)["error"]
    assert "no support key is known" in error and "--recipient" in error and "\n" not in error
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.timeout(120)
def test_a_tls_failure_counts_as_unreachable_the_bundle_waits_in_the_spool(pub, tmp_path, env):
    from tests.test_upload import _self_signed

    cert, key = _self_signed(tmp_path)
    fake = FakeTus(tls=(cert, key))
    try:
        root = HOSTS["linux"](tmp_path / "root")
        r = jcdiag("collect", "--root", root, "--platform", "linux", "--server", fake.url, "--upload",
                   "--recipient", pub, "--output", tmp_path / "out", "--json", "--yes",
                   env={**env, "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""})
    finally:
        fake.close()
    assert r.returncode == 4, r.stderr
    result = one_json(r)
    assert "TLS verification" in result["upload"]["error"] and result["upload"]["spooled"]


# --------------------------------------------------------------------------- fetch


def _same_id_bundle(tmp_path: Path, pub: Path, case: str, bundle_id: str) -> Path:
    from collector.envelope import load_recipient_file
    from collector.pipeline import CollectOptions, collect

    opts = CollectOptions(output=tmp_path / case, platform="linux", root=str(HOSTS["linux"](tmp_path / f"r{case}")),
                          recipients=[load_recipient_file(str(pub))], case_id=case, bundle_id=bundle_id)
    return collect(opts).path


@pytest.mark.timeout(180)
def test_fetch_picks_the_case_and_resumes_with_range_after_cuts(intake, pub, tmp_path):
    from collector.ids import new_bundle_id

    bid = new_bundle_id()
    paths = {case: _same_id_bundle(tmp_path, pub, case, bid) for case in ("C-1", "C-2")}
    for case, path in paths.items():
        assert send(path, intake.url, intake.token("--case", case), retry=FAST).ok
    engineer = intake.token_file(tmp_path / "e.tok", "--engineer")
    both = jcdiag("fetch", bid, "--server", intake.url, "--token-file", engineer, "--to", tmp_path / "g",
                  "--json")
    assert both.returncode == 1 and "C-1, C-2" in one_json(both)["error"] and "--case" in one_json(both)["error"]
    got = jcdiag("fetch", bid, "--case", "C-2", "--server", intake.url, "--token-file", engineer,
                 "--to", tmp_path / "g", "--json")
    assert got.returncode == 0, got.stderr
    assert Path(one_json(got)["path"]).read_bytes() == paths["C-2"].read_bytes()

    # the intake serves Range, and a kept partial file is resumed, not fetched again
    want = paths["C-1"].read_bytes()
    sha = hashlib.sha256(want).hexdigest()
    tail = intake.get(f"/api/v1/bundles/{bid}/content?case=C-1", engineer.read_text().strip(),
                      headers={"Range": "bytes=100-"})
    assert tail.status_code == 206 and tail.content == want[100:]
    assert tail.headers["Content-Range"] == f"bytes 100-{len(want) - 1}/{len(want)}"
    past = intake.get(f"/api/v1/bundles/{bid}/content?case=C-1", engineer.read_text().strip(),
                      headers={"Range": f"bytes={len(want)}-"})
    assert past.status_code == 416
    to = tmp_path / "resume"
    to.mkdir()
    half = len(want) // 2
    (to / f".{bid}.{sha[:16]}.partial").write_bytes(want[:half])
    r = jcdiag("fetch", bid, "--case", "C-1", "--server", intake.url, "--token-file", engineer, "--to", to,
               "--json")
    assert r.returncode == 0, r.stderr
    assert one_json(r)["resumed_from"] == half and (to / f"{bid}.7z").read_bytes() == want
    # proof the kept bytes were not fetched again: a damaged kept prefix fails the digest, and goes
    (to / f"{bid}.7z").unlink()
    (to / f".{bid}.{sha[:16]}.partial").write_bytes(b"\0" * half)
    bad = jcdiag("fetch", bid, "--case", "C-1", "--server", intake.url, "--token-file", engineer, "--to", to)
    assert bad.returncode == 1 and "does not match" in bad.stderr and list(to.iterdir()) == []

    # cuts in the middle of the download: resumed in the same run
    proxy = FaultProxy([intake.port], cuts=3, down_window=len(want), seed=3, down_share=1.0)
    try:
        cut = jcdiag("fetch", bid, "--case", "C-1", "--server", proxy.url, "--token-file", engineer,
                     "--to", tmp_path / "cut", "--json")
    finally:
        proxy.close()
    assert cut.returncode == 0, cut.stderr
    assert Path(one_json(cut)["path"]).read_bytes() == want and one_json(cut)["case_id"] == "C-1"
    assert proxy.cuts_done >= 1
    assert [p.name for p in (tmp_path / "cut").iterdir()] == [f"{bid}.7z"]     # no partial left


# --------------------------------------------------------------------------- 20 cuts, a mixed spool


@pytest.mark.timeout(300)
def test_twenty_random_cuts_across_a_mixed_spool_lose_nothing_and_resend_at_most_a_chunk_each(
        intake, pub, tmp_path, env, spool_dir):
    chunk = 32 * 1024
    proxy = FaultProxy([intake.port], cuts=20, up_window=3 * chunk, seed=13)
    engineer = intake.token("--engineer")
    spool = Spool(spool_dir)
    token = intake.token("--case", "X-1")
    sendable = [bundle_for(tmp_path, pub, "X-1", f"p{i}", size=250_000) for i in range(3)]
    for b in sendable:
        spool.add(b["path"], server=proxy.url, case_id="X-1", token=token)
    held = bundle_for(tmp_path, pub, "X-1", "held")
    spool.add(held["path"], server=proxy.url, case_id="X-1", token=token).hold("refused (403)", 403)
    missing = bundle_for(tmp_path, pub, "X-1", "missing")
    gone = spool.add(missing["path"], server=proxy.url, case_id="X-1", token=token)
    (gone.dir / Path(missing["path"]).name).unlink()
    broken = bundle_for(tmp_path, pub, "X-1", "broken")
    spool.add(broken["path"], server=proxy.url, case_id="X-1", token=token).state_path.write_text("{nope")
    before = intake.stats(engineer).get("patch_bytes_received", 0)
    resent, runs = 0, 0
    try:
        while runs < 8:
            runs += 1
            r = jcdiag("upload", "--pending", "--json", "--chunk-size", str(chunk), env=env, timeout=200)
            out = one_json(r)
            resent += sum(u["bytes_resent"] for u in out["uploads"])
            if r.returncode == 0:
                break
            assert r.returncode == 4, r.stderr
    finally:
        proxy.close()
    assert r.returncode == 0, r.stderr
    assert proxy.cuts_done >= 20
    assert set(out["held"]) == {held["bundle_id"], missing["bundle_id"], broken["bundle_id"]}
    for b in sendable:                                          # lost nothing: every byte verified
        record = intake.get(f"/api/v1/bundles/{b['bundle_id']}?case=X-1", engineer).json()
        assert record["sha256"] == b["sha256"]
    total = sum(b["size"] for b in sendable)
    received = intake.stats(engineer)["patch_bytes_received"] - before
    assert resent <= proxy.cuts_done * chunk                    # client side: a chunk per cut at most
    assert total <= received <= total + proxy.cuts_done * chunk  # server side likewise
    assert set(listed(env)) == {held["bundle_id"], missing["bundle_id"], broken["bundle_id"]}


# --------------------------------------------------------------------------- the run lock


def test_upload_fetch_and_spool_do_not_take_the_run_lock(intake, tmp_path, env):
    from collector.automation import single_run_lock

    with single_run_lock(os.environ["JCDIAG_LOCK_FILE"]):
        assert jcdiag("upload", "--pending", env=env).returncode == 0
        assert jcdiag("spool", "list", env=env).returncode == 0
        engineer = intake.token_file(tmp_path / "e.tok", "--engineer")
        r = jcdiag("fetch", "JCD-0000-0000-0000", "--server", intake.url, "--token-file", engineer, env=env)
        assert r.returncode == 1 and "no finished bundle" in r.stderr        # refused by the server, not the lock


# --------------------------------------------------------------------------- backoff and odd spool files


def test_a_scheduled_run_waits_out_the_backoff_an_explicit_one_does_not(pub, tmp_path):
    from collector.upload import send_pending

    bundle = bundle_for(tmp_path, pub, "K-1")
    spool = Spool(tmp_path / "spool")
    down = f"http://127.0.0.1:{free_port()}/"
    spool.add(bundle["path"], server=down)
    (first,) = send_pending(spool, retry=FAST, deadline=1)
    assert first.status == "failed" and first.sendable_failure
    state = spool.get(bundle["bundle_id"]).load()
    assert state.attempts == 1 and state.next_attempt_ts > time.time() + 20      # backed off
    (waiting,) = send_pending(spool, retry=FAST, deadline=1, due_only=True)
    assert waiting.status == "deferred" and spool.get(bundle["bundle_id"]).load().attempts == 1
    fake = FakeTus()
    try:
        from collector.upload import Offer
        spool.get(bundle["bundle_id"]).update(server=fake.url)
        (sent,) = send_pending(spool, Offer(), retry=FAST)        # upload --pending: now
    finally:
        fake.close()
    assert sent.ok and spool.views() == []


@pytest.mark.timeout(60)
def test_a_bundle_changed_in_the_spool_or_a_linked_state_file_is_held_not_sent(pub, tmp_path):
    from collector.upload import send_pending

    a = bundle_for(tmp_path, pub, "K-2", "a")
    b = bundle_for(tmp_path, pub, "K-2", "b")
    spool = Spool(tmp_path / "spool")
    fake = FakeTus()
    try:
        changed = spool.add(a["path"], server=fake.url)
        path = changed.dir / Path(a["path"]).name
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.unlink()                                       # (a hard link to the output: replace it)
        path.write_bytes(bytes(data))
        linked = spool.add(b["path"], server=fake.url)
        outside = tmp_path / "elsewhere.json"
        outside.write_text(linked.state_path.read_text())
        linked.state_path.unlink()
        linked.state_path.symlink_to(outside)
        c = bundle_for(tmp_path, pub, "K-2", "c")
        fifo = spool.add(c["path"], server=fake.url)
        fifo.state_path.unlink()
        os.mkfifo(fifo.state_path)                          # reading it must not wait forever
        results = {r.bundle_id: r for r in send_pending(spool, retry=FAST)}
    finally:
        fake.close()
    assert results[a["bundle_id"]].status == "held" and "changed since it was spooled" in results[a["bundle_id"]].error
    assert results[b["bundle_id"]].status == "held" and "unreadable" in results[b["bundle_id"]].error
    assert results[c["bundle_id"]].status == "held" and "not a regular file" in results[c["bundle_id"]].error
    assert fake.uploads == {}                               # nothing of either reached the server


def test_an_intake_without_a_token_fails_before_collecting(intake, tmp_path, env):
    root = HOSTS["linux"](tmp_path / "root")
    started = time.monotonic()
    r = jcdiag("collect", "--root", root, "--platform", "linux", "--server", intake.url, "--upload",
               "--output", tmp_path / "out", "--json", "--yes", env=env)
    assert r.returncode == 1 and "need its upload token" in one_json(r)["error"]
    assert time.monotonic() - started < 20 and not (tmp_path / "out").exists()


def test_a_bundle_another_run_is_sending_is_left_to_it(pub, tmp_path):
    from collector.upload import deliver

    bundle = bundle_for(tmp_path, pub, "K-3")
    spool = Spool(tmp_path / "spool")
    fake = FakeTus()
    try:
        entry = spool.add(bundle["path"], server=fake.url)
        with entry.locked():
            result = deliver(bundle["path"], fake.url, None, spool=spool, retry=FAST)
    finally:
        fake.close()
    assert result.busy and not result.sendable_failure and "another jcdiag run" in result.error
    assert fake.uploads == {}


@pytest.mark.parametrize("record", [
    {"sha256": "../../../../../../../../../../../../../../../../../../../../../../tmp/x", "size": 1},
    {"sha256": "A" * 64, "size": 1},
    {"sha256": "a" * 64, "size": -1},
    {"sha256": "a" * 64, "size": True},
    ["not", "an", "object"],
])
def test_fetch_refuses_a_hostile_record_and_writes_nothing(tmp_path, record):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from collector.upload import UploadError

    asked = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            asked.append(self.path)
            body = json.dumps(record).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(UploadError):
            fetch_bundle(f"http://127.0.0.1:{server.server_address[1]}", "t", "JCD-0000-0000-0001",
                         tmp_path / "to", retry=FAST)
    finally:
        server.shutdown()
        server.server_close()
    assert asked == ["/api/v1/bundles/JCD-0000-0000-0001"]        # refused before any download
    assert not (tmp_path / "to").exists() and list(tmp_path.iterdir()) == []


def test_a_damaged_entry_is_dropped_by_the_age_cap_like_any_other(pub, tmp_path, caplog):
    import logging

    bundle = bundle_for(tmp_path, pub, "K-4")
    spool = Spool(tmp_path / "spool", max_age=3600)
    entry = spool.add(bundle["path"])
    entry.state_path.write_text("[]")
    assert spool.enforce_caps() == []                                  # young: kept, and listed as held
    old = time.time() - 7200
    os.utime(entry.dir, (old, old))
    with caplog.at_level(logging.WARNING, logger="jcdiag.spool"):
        assert spool.enforce_caps() == [bundle["bundle_id"]]
    assert "damaged" in caplog.text and not entry.dir.exists()
