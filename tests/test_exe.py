"""The single-file executable: built with PyInstaller, run outside the repository and its venv.

Slow (a build takes about half a minute on two cores); CI installs the ``[build]``
extra so it runs there.  Where PyInstaller is not installed the module is skipped and
says why.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector import __version__
from tests.opener import open_with_stock_tools

pytest.importorskip("PyInstaller", reason="PyInstaller is not installed: pip install -e '.[build]'")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the test builds the Linux executable")]

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / "tests/fixtures/linux/ubuntu2204"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build once for the module; the build script's own report (size, times, smoke test)."""
    dist = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, str(REPO / "scripts/build_exe.py"), "--dist", str(dist), "--measure",
                        "--json"], capture_output=True, text=True, timeout=900, cwd=REPO,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"\nexecutable: {report['size_bytes'] / 1048576:.1f} MiB, build {report['build_s']} s, "
          f"--version {report['exe_version_s']} s (python -m collector: {report['python_m_version_s']} s)")
    return report


@pytest.fixture
def exe(built, tmp_path):
    """Runs the executable from an empty folder with no Python paths: it must need neither."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("JCDIAG_")}
    env["JCDIAG_SPOOL"] = str(tmp_path / "spool")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    work = tmp_path / "cwd"
    work.mkdir()

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([built["executable"], *args], capture_output=True, text=True, timeout=timeout,
                              cwd=work, env=env, stdin=subprocess.DEVNULL)
    return run


def test_name_size_and_build_report(built):
    path = Path(built["executable"])
    import platform
    arch = {"amd64": "x86_64", "aarch64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    assert path.name == f"jcdiag-linux-{arch}" and os.access(path, os.X_OK)
    assert built["size_bytes"] == path.stat().st_size and 5 * 1024 ** 2 < built["size_bytes"] < 80 * 1024 ** 2
    assert built["smoke"]["check_exit"] in (0, 3) and built["smoke"]["lifecycle"] == "unpatched"
    assert built["exe_version_s"] < 5 and built["build_s"] < 600


def test_version(exe):
    r = exe("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"jcdiag, version {__version__}"


def test_help_names_the_program_jcdiag(exe):
    r = exe("--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: jcdiag ")
    for command in ("collect", "check", "upload", "config", "intake"):
        assert command in r.stdout


def test_check_json_uses_the_bundled_lifecycle_table(exe):
    r = exe("check", "--root", str(ROOT), "--platform", "linux", "--as-of", "2026-11-01", "--json")
    assert r.returncode == 3, r.stderr
    result = json.loads(r.stdout)
    assert result["os"]["id"] == "ubuntu" and result["lifecycle"]["status"] == "unpatched"
    assert result["lifecycle"]["eol_date"] == "2027-04-01"       # from collector/data/lifecycle.json


def test_collect_makes_a_bundle_that_opens_with_7z_and_openssl(exe, tmp_path):
    r = exe("keygen", "--out", str(tmp_path / "support"))
    assert r.returncode == 0, r.stderr
    key, pub = tmp_path / "support.key.pem", tmp_path / "support.pub.pem"
    out = tmp_path / "out"
    r = exe("collect", "--root", str(ROOT), "--platform", "linux", "--recipient", str(pub), "--output", str(out),
            "--json", "--yes")
    assert r.returncode in (0, 3), r.stderr
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    result = json.loads(lines[0])
    bundle = Path(result["path"])
    assert bundle.parent == out and bundle.name == f"{result['bundle_id']}.7z"
    assert result["redactions"].get("system-token") == 1             # the bundled redaction rules ran
    inner = open_with_stock_tools(bundle, key, tmp_path / "opened")
    summary = json.loads((inner / "summary.json").read_text())
    assert summary["bundle_id"] == result["bundle_id"] and summary["platform"] == "linux"
    assert (inner / "SUMMARY.txt").read_text().strip()


def test_config_show_works_frozen(exe, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('server = "https://intake.example.com"\nmax_file_size = "20M"\n')
    r = exe("config", "show", "--config", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    settings = json.loads(r.stdout)["settings"]
    assert settings["max_file_size"] == {"value": 20 * 1024 ** 2, "source": f"file {cfg}"}
