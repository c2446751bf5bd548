"""The issue report: flags, prompts on a terminal, report.json, and the admin's words redacted."""
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.envelope import keygen
from tests.hosts import HOSTS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pub(tmp_path_factory):
    return keygen(tmp_path_factory.mktemp("k") / "s")[1]


def test_report_flags_land_in_report_json_and_summary(tmp_path):
    root = HOSTS["linux"](tmp_path / "root")
    shot = tmp_path / "screenshot.png"
    shot.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    err = tmp_path / "error.txt"
    err.write_text("Error: login failed for bob; token=ghp_abcdefghijklmnopqrstuvwxyz0123456789\n")
    review = tmp_path / "review"
    r = subprocess.run([sys.executable, "-m", "collector", "collect", "--root", str(root), "--platform",
                        "linux", "--review", str(review), "--yes", "--json",
                        "--description", "Agent stops after sleep; pasted password=Hunter2Secret!",
                        "--steps-taken", "restarted jcagent", "--noticed-at", "2026-11-20T09:30",
                        "--severity", "2", "--resource", "user:bob", "--resource", "system:web-01",
                        "--attach", str(shot), "--attach", str(err)],
                       capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode in (0, 3), r.stderr
    report = json.loads((review / "report.json").read_text())
    assert report["severity"] == 2 and report["severity_meaning"].startswith("Major")
    assert report["noticed_at"] == "2026-11-20T09:30:00"
    assert report["resources"] == ["user:bob", "system:web-01"]
    assert report["steps_taken"] == "restarted jcagent"
    assert "Hunter2Secret!" not in report["description"] and "Agent stops after sleep" in report["description"]
    assert sorted(report["attachments"]) == ["error.txt", "screenshot.png"]
    assert (review / "attachments/screenshot.png").read_bytes() == shot.read_bytes()
    assert "ghp_abcdefghijklmnopqrstuvwxyz0123456789" not in (review / "attachments/error.txt").read_text()
    summary = (review / "SUMMARY.txt").read_text()
    assert "Issue report" in summary and "user:bob" in summary and "Hunter2Secret!" not in summary


def test_bad_severity_is_a_usage_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "collector", "collect", "--severity", "4", "--yes"],
                       capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "--severity" in r.stderr


@pytest.mark.timeout(120)
def test_interactive_run_prompts_for_the_report(tmp_path, pub):
    root = HOSTS["linux"](tmp_path / "root")
    out = tmp_path / "out"
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "collector", "collect", "--root", str(root),
                             "--platform", "linux", "--recipient", str(pub), "--output", str(out)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=REPO, close_fds=True)
    os.close(slave)
    answers = [("Describe the issue", "Agent offline since update"),
               ("Troubleshooting steps", "rebooted"),
               ("When was it noticed", "2026-11-19 08:00"),
               ("Severity", "1"),
               ("resources involved", "group:admins")]
    seen = b""
    deadline = time.monotonic() + 90
    for prompt, answer in answers:
        while prompt.encode() not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        assert prompt.encode() in seen, seen.decode(errors="replace")
        seen = b""
        os.write(master, answer.encode() + b"\r")
    output = b""
    while time.monotonic() < deadline:
        if select.select([master], [], [], 1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    text = output.decode(errors="replace")
    assert proc.returncode in (0, 3), text
    last = [l for l in text.splitlines() if l.strip()][-1]
    assert last.startswith("Bundle ID: JCD-")          # the bundle ID is printed last
    bundle = next(out.glob("JCD-*.7z"))
    from collector.envelope import load_private_key
    from collector.unpack import Credentials, open_bundle
    key = load_private_key(str(pub).replace(".pub.pem", ".key.pem"))
    open_bundle(bundle, Credentials(private_key=key), tmp_path / "o")
    report = json.loads((tmp_path / "o/report.json").read_text())
    assert report["description"] == "Agent offline since update"
    assert report["severity"] == 1 and report["resources"] == ["group:admins"]
    assert report["noticed_at"] == "2026-11-19T08:00:00"
