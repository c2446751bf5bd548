"""--obfuscate / --map / --redact-keyword through the real CLI on a fixture host."""
import json
import subprocess
import sys
from pathlib import Path

from tests.hosts import HOSTS

REPO = Path(__file__).resolve().parent.parent


def collect(root, review, *extra):
    r = subprocess.run([sys.executable, "-m", "collector", "collect", "--root", str(root), "--platform",
                        "linux", "--review", str(review), "--json", "--yes", *extra],
                       capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode in (0, 3), r.stderr
    return r


def tree_text(d: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(d.rglob("*")) if p.is_file())


def test_pseudonyms_are_consistent_across_runs_with_a_map_and_the_map_stays_out(tmp_path):
    root = HOSTS["linux"](tmp_path / "root")
    (root / "etc/hostname").write_text("web-01.corp.acme-widgets.net\n")
    (root / "home/alice").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                     "alice:x:1000:1000:Alice:/home/alice:/bin/bash\n")
    with open(root / "var/log/jcagent.log", "a") as fh:
        fh.write("2026-11-20 11:00:01 [INFO] user alice logged in from 10.20.30.41 to "
                 "web-01.corp.acme-widgets.net mac 00:1a:2b:3c:4d:5e mail alice@acme-widgets.net project Bluebird\n")
    mapfile = tmp_path / "map.json"
    collect(root, tmp_path / "r1", "--obfuscate", "--map", str(mapfile), "--redact-keyword", "Bluebird")
    collect(root, tmp_path / "r2", "--obfuscate", "--map", str(mapfile), "--redact-keyword", "Bluebird")
    t1, t2 = tree_text(tmp_path / "r1/logs"), tree_text(tmp_path / "r2/logs")
    for original in ("10.20.30.41", "web-01.corp.acme-widgets.net", "00:1a:2b:3c:4d:5e", "alice@acme-widgets.net",
                     "Bluebird", "user alice "):
        assert original not in t1, original
    line1 = next(l for l in t1.splitlines() if "logged in from" in l)
    line2 = next(l for l in t2.splitlines() if "logged in from" in l)
    assert line1 == line2                               # the same pseudonyms in both runs
    assert mapfile.stat().st_mode & 0o777 == 0o600
    assert "10.20.30.41" in mapfile.read_text()         # the map knows the originals...
    names = [p.name for p in (tmp_path / "r1").rglob("*")]
    assert "map.json" not in names                      # ...and never goes in the bundle
    red = json.loads((tmp_path / "r1/redaction.json").read_text())
    assert red["ruleset_version"]


def test_keyword_without_obfuscate(tmp_path):
    root = HOSTS["linux"](tmp_path / "root")
    with open(root / "var/log/jcagent.log", "a") as fh:
        fh.write("2026-11-20 11:00:01 [INFO] project Bluebird started\n")
    collect(root, tmp_path / "r", "--redact-keyword", "bluebird")
    text = tree_text(tmp_path / "r/logs")
    assert "Bluebird" not in text and "project" in text
