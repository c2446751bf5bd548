"""Scheduled runs through the real CLI: one at a time, and --max-runtime ends a run cleanly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.automation import single_run_lock
from collector.envelope import keygen
from tests.hosts import HOSTS

REPO = Path(__file__).resolve().parent.parent


def run(args, env):
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **env}, stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture
def setup(tmp_path):
    root = HOSTS["linux"](tmp_path / "root")
    _, pub = keygen(tmp_path / "k")
    env = {"JCDIAG_SPOOL": str(tmp_path / "state/spool"), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    args = ["collect", "--root", str(root), "--platform", "linux", "--recipient", str(pub),
            "--output", str(tmp_path / "out"), "--json", "--yes"]
    return args, env, tmp_path


def test_a_second_live_run_is_refused_while_one_holds_the_lock(setup):
    args, env, tmp_path = setup
    (tmp_path / "state").mkdir()
    lock = tmp_path / "state/jcdiag.lock"
    env = {**env, "JCDIAG_LOCK_FILE": str(lock)}
    live = [a for a in args if a not in ("--root", args[args.index("--root") + 1], "--platform", "linux")]
    with single_run_lock(lock):
        r = run(live, env)
        assert r.returncode == 1
        err = json.loads(r.stdout)["error"]
        assert "in progress" in err.lower() and str(os.getpid()) in err and str(lock) in err
        # --root and --review runs touch nothing another run owns: the lock does not stop them
        assert run(args, env).returncode in (0, 3)
        review = run(args[:args.index("--recipient")] + ["--review", str(tmp_path / "review"), "--json",
                                                         "--yes"], env)
        assert review.returncode in (0, 3), review.stderr
        assert (tmp_path / "review" / "manifest.json").is_file()
    assert run(args, env).returncode in (0, 3)


@pytest.mark.timeout(120)
def test_max_runtime_ends_the_run_and_leaves_nothing_behind(setup):
    args, env, tmp_path = setup
    big = Path(args[2]) / "var/log/jcagent.log.3"
    with open(big, "wb") as fh:
        for _ in range(80):
            fh.write(os.urandom(512 * 1024).hex().encode() + b"\n")
    r = run(args + ["--max-runtime", "2s", "--max-file-size", "200M"], env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2" in json.loads(r.stdout)["error"]
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_config_file_supplies_output_and_caps(setup):
    args, env, tmp_path = setup
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'output = "{tmp_path / "from-config"}"\nmax_file_size = "1k"\n')
    args = [a for a in args]
    i = args.index("--output")
    del args[i:i + 2]
    r = run(args + ["--config", str(cfg)], env)
    assert r.returncode in (0, 3), r.stderr
    result = json.loads(r.stdout)
    assert Path(result["path"]).parent == tmp_path / "from-config"
    assert result["collection"]["truncated"] >= 1
    bad = tmp_path / "bad.toml"
    bad.write_text('max_file_size = "fifty"\n')
    b = run(args + ["--config", str(bad)], env)
    assert b.returncode == 1 and "max_file_size" in json.loads(b.stdout)["error"]
