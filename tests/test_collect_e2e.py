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
    assert r.returncode == 2                    # a usage error, found before any collecting
    assert "cannot be created" in r.stderr and "--output" in r.stderr


def test_disk_full_while_compressing_is_one_line_exit_1_and_leaves_nothing(tmp_path, keys, monkeypatch):
    """The payload is written by a background thread while files are gathered: its
    failure must still reach the admin as one line, with no bundle and no temp data."""
    import errno
    import tempfile
    from click.testing import CliRunner
    from collector import cli, sevenzip

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(sevenzip.StreamingWriter, "_write", full)
    monkeypatch.setenv("JCDIAG_SPOOL", str(tmp_path / "spool"))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    root = HOSTS["linux"](tmp_path / "root")
    with open(root / "var/log/jcagent.log.1", "wb") as fh:      # blocks full while gathering
        fh.write(b"".join(b"2026-11-01 10:00:00 [INFO] line %08d %s\n" % (i, os.urandom(8).hex().encode())
                          for i in range(300_000)))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli.main, ["collect", "--root", str(root), "--platform", "linux", "--recipient",
                                      str(keys[1]), "--output", str(out), "--json", "--yes"])
    assert r.exit_code == 1, r.output
    error = json.loads(r.output)["error"]
    assert "No space left on device" in error and "\n" not in error
    assert not list(out.glob("*")) and not list(tmpdir.iterdir())


def test_open_errors_are_one_line_and_exit_1(keys, tmp_path):
    root = HOSTS["linux"](tmp_path / "root")
    r = jcdiag("collect", "--root", str(root), "--platform", "linux", "--recipient", str(keys[1]),
               "--output", str(tmp_path / "out"), "--json")
    bundle = Path(json.loads(r.stdout)["path"])
    other, _ = keygen(tmp_path / "other")
    wrong = jcdiag("open", str(bundle), "--key", str(other), "--to", str(tmp_path / "w"))
    assert wrong.returncode == 1 and "sealed to other keys" in wrong.stderr
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


def _collect_as_unprivileged(opts):
    """Run the pipeline in a forked child that is not root (root reads everything)."""
    from collector.pipeline import collect
    if os.geteuid() != 0:
        r = collect(opts)
        return {"exit": r.exit_code, "json": r.to_json()}
    result_file = opts.output / "result.json"
    for codec in ("utf-16-le", "utf-16-be", "utf-16", "utf-8", "latin-1", "ascii"):
        "warm".encode(codec)      # the stdlib under /root is unreadable for nobody: load before fork
    pid = os.fork()
    if pid == 0:                                      # child: become nobody, collect, report
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            r = collect(opts)
            result_file.write_text(json.dumps({"exit": r.exit_code, "json": r.to_json()}))
            code = 0
        except BaseException:
            import traceback
            (opts.output / "error.txt").write_text(traceback.format_exc())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    error = opts.output / "error.txt"
    assert os.waitstatus_to_exitcode(status) == 0, error.read_text() if error.exists() else ""
    data = json.loads(result_file.read_text())
    result_file.unlink()
    return data


def test_unreadable_file_is_recorded_and_the_run_goes_on(tmp_path, keys):
    import tempfile
    from collector.envelope import load_recipient_file
    from collector.pipeline import CollectOptions
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        root = HOSTS["linux"](base / "root")
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (root / "var/log/jcagent.log.1").chmod(0o000 if os.geteuid() else 0o600)   # root-only
        out = base / "out"
        out.mkdir()
        out.chmod(0o777)
        opts = CollectOptions(output=out, platform="linux", root=str(root),
                              recipients=[load_recipient_file(keys[1])])
        data = _collect_as_unprivileged(opts)
        assert data["exit"] == 3
        failed = data["json"]["failed_collectors"]
        assert [f["source"] for f in failed] == ["/var/log/jcagent.log.1"]
        assert "permission denied" in failed[0]["reason"]
        assert Path(data["json"]["path"]).exists()
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
