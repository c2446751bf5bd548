"""jcdiag collect end to end, through the real console entry point, opened with 7z + openssl."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.envelope import keygen
from tests.hosts import CONNECT_KEY, HOSTS, KEY_MARKER, LDAP_PWD, SECRETS, SYSTEM_TOKEN
from tests.opener import open_with_stock_tools

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return keygen(tmp_path_factory.mktemp("keys") / "support")


def jcdiag(*args, env=None, timeout=120, **kw):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=full_env, stdin=subprocess.DEVNULL, **kw)


def all_text(tree: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in tree.rglob("*") if p.is_file())


@pytest.mark.parametrize("family", ["linux", "macos", "windows"])
def test_collect_opens_with_stock_tools_and_holds_no_secret(family, keys, tmp_path):
    root = HOSTS[family](tmp_path / "root")
    out = tmp_path / "out"
    r = jcdiag("collect", "--root", str(root), "--platform", family, "--recipient", str(keys[1]),
               "--output", str(out), "--case", "00123", "--json", "--yes")
    assert r.returncode in (0, 3), r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(lines) == 1                                   # exactly one JSON object
    result = json.loads(lines[0])
    bundle = Path(result["path"])
    assert bundle.name == f"{result['bundle_id']}.7z" and bundle.exists()
    inner = open_with_stock_tools(bundle, keys[0], tmp_path / "opened")
    names = {p.relative_to(inner).as_posix() for p in inner.rglob("*") if p.is_file()}
    assert {"SUMMARY.txt", "summary.json", "manifest.json", "report.json", "redaction.json"} <= names
    assert any(n.endswith("/jcagent.log") for n in names)
    conf = next(inner.rglob("jcagent.conf"))
    conf_data = json.loads(conf.read_text())
    assert "systemToken" in conf_data and conf_data["systemToken"] != SYSTEM_TOKEN
    assert conf_data["userMgmt"]["local_ldap_bind_pwd"] != LDAP_PWD
    text = all_text(inner)
    assert KEY_MARKER not in text
    for secret in SECRETS:
        assert secret not in text
    summary = json.loads((inner / "summary.json").read_text())
    assert summary["bundle_id"] == result["bundle_id"] and summary["platform"] == family
    assert summary["case_id"] == "00123"
    manifest = json.loads((inner / "manifest.json").read_text())
    never = [a for a in manifest["artifacts"] if "never collected" in a.get("reason", "")]
    assert len(never) >= 1          # a planted nested *.key was reached and refused


def test_adsync_both_log_names_and_ad_import_are_collected(keys, tmp_path):
    root = HOSTS["windows"](tmp_path / "root")
    r = jcdiag("collect", "--root", str(root), "--platform", "windows", "--review",
               str(tmp_path / "review"), "--json", "--yes")
    assert r.returncode in (0, 3), r.stderr
    names = {p.name for p in (tmp_path / "review").rglob("*")}
    assert {"adsync.log", "JumpCloud_AD_Sync.log", "JumpCloud_AD_Integration.log"} <= names
    msi = next((tmp_path / "review").rglob("jcUpdate.log")).read_text()
    assert CONNECT_KEY not in msi and "JCINSTALLERARGUMENTS" in msi


def test_no_recipient_and_no_password_in_a_non_tty_run_writes_nothing(tmp_path):
    root = HOSTS["linux"](tmp_path / "root")
    out = tmp_path / "out"
    r = jcdiag("collect", "--root", str(root), "--platform", "linux", "--output", str(out), "--yes")
    assert r.returncode == 1
    assert "no recipient key and no password" in r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_password_mode_bundle_opens_with_7z_and_the_password(tmp_path):
    root = HOSTS["linux"](tmp_path / "root")
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery staple\n")
    r = jcdiag("collect", "--root", str(root), "--platform", "linux", "--password-file", str(pw),
               "--output", str(tmp_path / "out"), "--json")
    result = json.loads(r.stdout)
    inner = open_with_stock_tools(Path(result["path"]), None, tmp_path / "o",
                                  password="correct horse battery staple")
    assert (inner / "SUMMARY.txt").exists()
    r2 = jcdiag("open", result["path"], "--password-file", str(pw), "--to", str(tmp_path / "o2"))
    assert r2.returncode == 0 and (tmp_path / "o2/SUMMARY.txt").exists()


def test_output_directory_that_is_not_writable(tmp_path, keys):
    root = HOSTS["linux"](tmp_path / "root")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = jcdiag("collect", "--root", str(root), "--platform", "linux", "--recipient", str(keys[1]),
               "--output", str(blocker / "sub"), "--yes")
    assert r.returncode == 1
    assert "not writable" in r.stderr and "--output" in r.stderr


def test_open_errors_are_one_line_and_exit_1(keys, tmp_path):
    root = HOSTS["linux"](tmp_path / "root")
    r = jcdiag("collect", "--root", str(root), "--platform", "linux", "--recipient", str(keys[1]),
               "--output", str(tmp_path / "out"), "--json")
    bundle = Path(json.loads(r.stdout)["path"])
    other, _ = keygen(tmp_path / "other")
    wrong = jcdiag("open", str(bundle), "--key", str(other), "--to", str(tmp_path / "w"))
    assert wrong.returncode == 1 and "not sealed to the given key" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 1
    tampered = tmp_path / "tampered.7z"
    tampered.write_bytes(bytes(data))
    t = jcdiag("open", str(tampered), "--key", str(keys[0]), "--to", str(tmp_path / "t"))
    assert t.returncode == 1 and len(t.stderr.strip().splitlines()) == 1
    truncated = tmp_path / "truncated.7z"
    truncated.write_bytes(bytes(data[: len(data) // 3]))
    u = jcdiag("open", str(truncated), "--key", str(keys[0]), "--to", str(tmp_path / "u"))
    assert u.returncode == 1 and len(u.stderr.strip().splitlines()) == 1
    ok = jcdiag("open", str(bundle), "--key", str(keys[0]), "--to", str(tmp_path / "ok"), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["verified"] is True
    insp = jcdiag("inspect", str(bundle), "--json")
    assert json.loads(insp.stdout)["bundle_id"] == bundle.stem


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a collector as another user")
def test_unreadable_file_is_recorded_and_the_run_goes_on(tmp_path, keys):
    import tempfile
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        root = HOSTS["linux"](base / "root")
        (root / "var/log/jcagent.log.1").chmod(0o600)      # root-only
        for p in [root, *root.rglob("*")]:
            if p != root / "var/log/jcagent.log.1":
                p.chmod(0o755 if p.is_dir() else 0o644)
        out = base / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        pub = base / "pub.pem"
        pub.write_bytes(keys[1].read_bytes())
        pub.chmod(0o644)
        r = subprocess.run([sys.executable, "-m", "collector", "collect", "--root", str(root),
                            "--platform", "linux", "--recipient", str(pub), "--output", str(out),
                            "--json"], capture_output=True, text=True, cwd=REPO, user=65534,
                           env={**os.environ, "HOME": str(base)}, timeout=120)
        assert r.returncode == 3, r.stderr
        result = json.loads(r.stdout)
        failed = result["failed_collectors"]
        assert [f["source"] for f in failed] == ["/var/log/jcagent.log.1"]
        assert "permission denied" in failed[0]["reason"]
        assert Path(result["path"]).exists()
    finally:
        subprocess.run(["rm", "-rf", str(base)])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_run_leaves_no_bundle_and_no_temp_data(signum, tmp_path, keys):
    root = HOSTS["linux"](tmp_path / "root")
    big = root / "var/log/jcagent.log.2"
    with open(big, "wb") as fh:                       # incompressible-ish, slow to compress
        for _ in range(60):
            fh.write(os.urandom(1024 * 1024).hex().encode()[:1024 * 1024] + b"\n")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "collector", "collect", "--root", str(root),
                             "--platform", "linux", "--recipient", str(keys[1]), "--output", str(out),
                             "--max-file-size", "100M"],
                            cwd=REPO, env={**os.environ, "TMPDIR": str(tmpdir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(tmpdir.glob("jcdiag-run-*/payload.7z")):      # compression under way
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert list(tmpdir.iterdir()) == []
    assert not out.exists() or list(out.iterdir()) == []
