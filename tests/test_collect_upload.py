"""collect --upload: the two-command loop of DESIGN.md, a bad token refused before collecting,
and an unreachable intake leaving the bundle in the spool (exit 4) for upload --pending."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from collector.envelope import keygen
from tests.hosts import HOSTS
from tests.transfer_kit import Intake, free_port, jcdiag, one_json


def queued(spool: Path) -> list[Path]:
    """The spool's entry folders (its cached server keys are files beside them)."""
    return [p for p in spool.iterdir() if p.is_dir()] if spool.exists() else []


@pytest.fixture
def env(tmp_path):
    return {"JCDIAG_SPOOL": str(tmp_path / "spool")}


@pytest.mark.timeout(90)
def test_collect_upload_fetch_open_with_the_servers_keys(tmp_path, env):
    root = HOSTS["linux"](tmp_path / "root")
    with Intake(tmp_path / "data") as intake:
        token = intake.token_file(tmp_path / "up.tok", "--case", "777")
        r = jcdiag("collect", "--root", root, "--platform", "linux", "--case", "777", "--server", intake.url,
                   "--token-file", token, "--upload", "--output", tmp_path / "out", "--json", "--yes", env=env)
        assert r.returncode in (0, 3), r.stderr
        result = one_json(r)
        assert result["upload"]["status"] == "uploaded" and result["upload"]["verified"]
        assert queued(tmp_path / "spool") == []
        # the keys the intake published are cached for a later run that cannot reach it
        assert len(list((tmp_path / "spool").glob("keys-*.json"))) == 1
        eng = intake.token_file(tmp_path / "eng.tok", "--engineer")
        got = jcdiag("fetch", result["bundle_id"], "--server", intake.url, "--token-file", eng,
                     "--to", tmp_path / "fetched", "--json")
        assert got.returncode == 0, got.stderr
        fetched = Path(one_json(got)["path"])
        assert fetched.read_bytes() == Path(result["path"]).read_bytes()
        opened = jcdiag("open", fetched, "--key", intake.data / "support.key.pem", "--to", tmp_path / "o")
        assert opened.returncode == 0, opened.stderr
        assert (tmp_path / "o/SUMMARY.txt").is_file()


@pytest.mark.timeout(60)
def test_bad_token_is_refused_before_collecting(tmp_path, env):
    root = HOSTS["linux"](tmp_path / "root")
    with Intake(tmp_path / "data") as intake:
        other = intake.token_file(tmp_path / "other.tok", "--case", "1")
        bad = tmp_path / "bad.tok"
        bad.write_text("not-a-token\n")
        for token in (bad, other):
            started = time.monotonic()
            r = jcdiag("collect", "--root", root, "--platform", "linux", "--case", "2", "--server",
                       intake.url, "--token-file", token, "--upload", "--output", tmp_path / "out", "--yes",
                       env=env)
            assert r.returncode == 1, r.stderr
            assert time.monotonic() - started < 10
            assert "token" in r.stderr.lower()
            assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.timeout(120)
def test_intake_down_exit_4_then_upload_pending(tmp_path, env):
    root = HOSTS["linux"](tmp_path / "root")
    port = free_port()
    data = tmp_path / "data"
    _, pub = keygen(tmp_path / "support")
    with Intake(data, port=port, extra=("--recipient", str(pub))) as intake:
        token = intake.token_file(tmp_path / "up.tok", "--case", "9")
    # the intake is stopped now
    r = jcdiag("collect", "--root", root, "--platform", "linux", "--case", "9", "--server",
               f"http://127.0.0.1:{port}", "--token-file", token, "--upload", "--recipient", pub,
               "--output", tmp_path / "out", "--json", "--yes", env=env,
               timeout=100)
    assert r.returncode == 4, r.stderr
    result = one_json(r)
    assert Path(result["path"]).exists() and result["upload"]["status"] == "failed"
    assert result["warnings"] and "spool" in result["warnings"][0]
    assert len(queued(tmp_path / "spool")) == 1
    with Intake(data, port=port, extra=("--recipient", str(pub))):
        p = jcdiag("upload", "--pending", "--json", env=env)
        assert p.returncode == 0, p.stderr
        (up,) = one_json(p)["uploads"]
        assert up["status"] == "uploaded" and up["bundle_id"] == result["bundle_id"]
    assert queued(tmp_path / "spool") == []
