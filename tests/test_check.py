"""jcdiag check on fixture roots of each OS, and the same verdict in a bundle's summary."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hivewriter import write_volume_hives
from tests.test_platform_windows import WIN11_23H2_PRO, registry_tree

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests/fixtures"


def jcdiag(*args):
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True,
                          cwd=REPO, stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture
def windows_root(tmp_path):
    root = tmp_path / "win"
    shutil.copytree(FIX / "windows/root", root)
    write_volume_hives(root, registry_tree(WIN11_23H2_PRO))
    return root


def roots(windows_root):
    return {"linux": FIX / "linux/ubuntu2204", "macos": FIX / "macos/sonoma-14.4.1", "windows": windows_root}


@pytest.mark.parametrize("family,expected", [("linux", ("ubuntu", "unpatched")),
                                             ("macos", ("macos", None)),
                                             ("windows", ("windows", None))])
def test_check_json_and_bundle_summary_agree(family, expected, windows_root, tmp_path):
    root = roots(windows_root)[family]
    r = jcdiag("check", "--root", str(root), "--platform", family, "--as-of", "2026-11-01", "--json")
    assert r.returncode in (0, 3), r.stderr
    result = json.loads(r.stdout)
    life = result["lifecycle"]
    assert life["product"] == expected[0]
    if expected[1]:
        assert life["status"] == expected[1]
    assert life["status"] in ("supported", "eol", "unpatched", "unknown") and life["reasons"]
    assert r.returncode == result["exit_code"] == (3 if life["status"] in ("eol", "unpatched")
                                                   or any(f["severity"] == "error" for f in result["findings"])
                                                   else 0)
    review = tmp_path / "review"
    c = jcdiag("collect", "--root", str(root), "--platform", family, "--as-of", "2026-11-01",
               "--review", str(review), "--json", "--yes")
    assert c.returncode in (0, 3), c.stderr
    summary = json.loads((review / "summary.json").read_text())
    assert summary["lifecycle"] == life
    assert json.loads(c.stdout)["lifecycle"]["status"] == life["status"]
    assert (review / "SUMMARY.txt").read_text().splitlines()[2].split(":")[0] in (
        "SUPPORTED", "END OF LIFE", "UNPATCHED", "UNKNOWN")


def test_windows_23h2_pro_and_enterprise_differ_on_2026_11_01(tmp_path):
    from tests.test_platform_windows import WIN11_ENTERPRISE
    verdicts = {}
    for name, tree in (("pro", WIN11_23H2_PRO), ("ent", WIN11_ENTERPRISE)):
        root = tmp_path / name
        root.mkdir()
        write_volume_hives(root, registry_tree(tree))
        r = jcdiag("check", "--root", str(root), "--platform", "windows", "--as-of", "2026-11-01", "--json")
        verdicts[name] = json.loads(r.stdout)["lifecycle"]
    assert verdicts["pro"]["status"] == "eol"
    assert verdicts["ent"]["status"] != "eol"
    assert verdicts["pro"]["cycle"] != verdicts["ent"]["cycle"]


def test_check_human_output_is_a_table(windows_root):
    r = jcdiag("check", "--root", str(FIX / "linux/ubuntu2204"), "--platform", "linux", "--as-of", "2026-11-01")
    assert r.stdout.startswith("Lifecycle: UNPATCHED")
    assert "SEVERITY  FINDING" in r.stdout


def test_check_on_an_os_missing_from_the_data_is_unknown(tmp_path):
    root = tmp_path / "r"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('NAME="Plan9"\nID=plan9\nVERSION_ID="4"\n')
    r = jcdiag("check", "--root", str(root), "--platform", "linux", "--json")
    assert json.loads(r.stdout)["lifecycle"]["status"] == "unknown"


def test_check_usage_errors():
    assert jcdiag("check", "--platform", "windows").returncode == 2
    assert jcdiag("check", "--as-of", "yesterday").returncode == 2


def test_an_offline_root_never_calls_the_agent_stopped_or_not_running(tmp_path):
    """A disk image cannot say whether a process runs: state unknown, no such finding."""
    from tests.hosts import HOSTS
    root = HOSTS["linux"](tmp_path / "root")
    r = jcdiag("check", "--root", str(root), "--platform", "linux", "--json")
    data = json.loads(r.stdout)
    assert data["agent"]["running"] is None and data["agent"]["processes"] is None
    assert any("not the live system" in n for n in data["agent"]["notes"])
    ids = {f["id"] for f in data["findings"]}
    assert not ids & {"agent-service-stopped", "agent-process-missing"}
    assert data["lifecycle"]["release"] in ("supported", "eol", "unknown")
    assert data["lifecycle"]["patch"] in ("current", "behind", "unknown")
