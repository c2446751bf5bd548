"""The HTML report of a real bundle (made by `jcdiag collect` from a hostile host), rendered in
headless Chromium: no console error, no network request, no script of the examined machine
runs, and the banner, the timeline's points and the manifest match the bundle's JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest

from collector import html_report
from tests.browser import chromium, open_page
from tests.hosts import linux_host

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "report test password 1"
HOSTILE = {
    "log": "<script>alert(1)</script>",
    "log_img": "<img src=x onerror=alert(2)>",
    "file": "jc<svg onload=alert(3)>.log",
    "attachment": "<img src=x onerror=alert(4)>.txt",
    "case": "<b>42</b>",
    "description": "It broke: <script>alert(6)</script><b>bold?</b> & \"quotes\" 'too'",
    "steps": "</pre><img src=x onerror=alert(7)>restarted",
    "resource": "<iframe src=javascript:alert(8)></iframe>group",
}
NOTICED = "2026-11-20T09:30:00"

pytestmark = pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed "
                                "(.ci/run installs it: apt-get install chromium)")


def hostile_log() -> str:
    """30 hours of agent log: three error kinds at different rates, HTML in every error line."""
    start, out = datetime(2026, 11, 19, 18, 0), []
    for minute in range(0, 30 * 60, 3):
        when = (start + timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M:%S")
        out.append(f"{when} [INFO] heartbeat ok\n")
        if minute % 9 == 0:
            out.append(f"{when} [ERROR] poll failed: {HOSTILE['log']} id {minute}\n")
        if minute % 60 == 0 and minute >= 14 * 60:
            out.append(f"{when} [ERROR] dial tcp: {HOSTILE['log_img']} & <b>timeout</b>\n")
        if minute == 600:
            out.append(f'{when} [FATAL] panic: "</script><script>alert(9)</script>"\n')
    return "".join(out)


def jcdiag(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, stdin=subprocess.DEVNULL, env=dict(os.environ))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A real bundle of a hostile Linux host, opened with `jcdiag open --report`."""
    tmp = tmp_path_factory.mktemp("report")
    root = linux_host(tmp / "root")
    (root / "var/log/jcagent.log").write_text(hostile_log())
    (root / "var/log" / HOSTILE["file"]).write_text(f"2026-11-20 10:00:00 [ERROR] {HOSTILE['log']}\n")
    attachment = tmp / HOSTILE["attachment"]
    attachment.write_text(f"error dialog said {HOSTILE['log']}\n")
    pw = tmp / "pw"
    pw.write_text(PASSWORD + "\n")
    r = jcdiag("collect", "--root", str(root), "--platform", "linux", "--password-file", str(pw),
               "--output", str(tmp / "out"), "--case", HOSTILE["case"], "--description",
               HOSTILE["description"], "--steps-taken", HOSTILE["steps"], "--resource", HOSTILE["resource"],
               "--noticed-at", NOTICED, "--severity", "1", "--attach", str(attachment), "--json", "--yes")
    assert r.returncode in (0, 3), r.stderr
    path = Path(json.loads(r.stdout)["path"])
    opened = tmp / "opened"
    r = jcdiag("open", str(path), "--password-file", str(pw), "--to", str(opened), "--report", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    docs = {name: json.loads((opened / f"{name}.json").read_text())
            for name in ("summary", "manifest", "report")}
    return {"bundle": path, "pw": pw, "opened": opened, "page": Path(result["report"]), "tmp": tmp, **docs}


def console_problems(page) -> list[dict]:
    return (page.of("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Page.javascriptDialogOpening")
            + [e for e in page.of("Log.entryAdded") if e["params"]["entry"]["level"] in ("error", "warning")])


def requests_other_than(page, url: str) -> list[str]:
    return [e["params"]["request"]["url"] for e in page.of("Network.requestWillBeSent")
            if e["params"]["request"]["url"] != url]


def test_report_in_headless_chromium(bundle, tmp_path):
    page_file, summary, manifest = bundle["page"], bundle["summary"], bundle["manifest"]
    assert page_file.parent == bundle["opened"] and page_file.stat().st_size < 2 * 1024 * 1024
    url = page_file.resolve().as_uri()
    with open_page(url, tmp_path / "profile", height=1000) as page:
        assert console_problems(page) == []
        assert requests_other_than(page, url) == []
        shot = page.screenshot()
        (tmp_path / "report.png").write_bytes(shot)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000

        # the banner says what summary.json says
        ev = page.evaluate
        assert ev("document.getElementById('bundle-id').textContent") == summary["bundle_id"]
        assert ev("document.getElementById('case-id').textContent") == HOSTILE["case"]
        assert ev("document.querySelector('#banner .verdict .badge').textContent") == \
            summary["lifecycle"]["status"]
        eol = summary["lifecycle"]["eol_date"]
        assert eol and eol in ev("document.getElementById('axis-release').textContent")

        # nothing from the examined machine became markup: only our two scripts, one svg, no img/iframe
        assert ev("document.scripts.length") == 2
        assert ev("document.querySelectorAll('img, iframe, object, embed, [onerror], [onload]').length") == 0
        assert ev("document.querySelectorAll('svg').length") == 1
        assert ev("document.querySelectorAll('#issue-report b, #top-errors b').length") == 0
        text = ev("document.body.textContent")
        for value in (HOSTILE["description"], HOSTILE["steps"], HOSTILE["resource"], HOSTILE["log"],
                      HOSTILE["log_img"]):
            assert value in text
        assert "alert(3)" in text and "alert(4)" in text          # the file names, as text

        # the timeline's points are summary.json's timeline, series by series
        points = ev("Array.from(document.querySelectorAll('circle.point')).map("
                    "c => [Number(c.dataset.series), c.dataset.bucket, Number(c.dataset.count)])")
        timeline = summary["log_stats"]["timeline"]
        keys = [e["message"] for e in summary["log_stats"]["top_errors"]][:html_report.MAX_SERIES]
        expected = sorted([i, bucket, count] for i, key in enumerate(keys)
                          for bucket, count in timeline["series"][key].items())
        assert sorted(points) == expected and len({p[1] for p in points}) > 10
        assert timeline["bucket_hours"] == 1
        assert ev("document.getElementById('noticed') !== null")

        # the manifest: one row per artifact, counts per status as in manifest.json
        artifacts = manifest["artifacts"]
        assert ev("document.querySelectorAll('#manifest tbody tr').length") == len(artifacts)
        statuses = ev("Array.from(document.querySelectorAll('#manifest tbody tr')).map(r => r.dataset.status)")
        assert sorted(statuses) == sorted(a["status"] for a in artifacts)
        counts = ev("document.getElementById('manifest-counts').textContent")
        for status in {a["status"] for a in artifacts}:
            assert f"{sum(a['status'] == status for a in artifacts)} {status}" in counts

        # every file link is relative, inside the folder, and names a file that exists
        hrefs = ev("Array.from(document.querySelectorAll('#files a')).map(a => a.getAttribute('href'))")
        on_disk = {p.relative_to(bundle["opened"]).as_posix() for p in bundle["opened"].rglob("*")
                   if p.is_file() and p != page_file}
        assert {unquote(h) for h in hrefs} == on_disk
        assert all(":" not in h and not h.startswith("/") and ".." not in h.split("/") for h in hrefs)
        attachment_link = ev("document.querySelector('#issue-report a').getAttribute('href')")
        assert (bundle["opened"] / unquote(attachment_link)).is_file()

        # the search filters the top error lines without a server
        total = ev("document.querySelectorAll('#top-errors tbody tr').length")
        assert total >= 3
        shown = ev("(() => { const q = document.querySelector('input[data-filter=\"top-errors\"]');"
                   " q.value = 'onerror'; q.dispatchEvent(new Event('input'));"
                   " return Array.from(document.querySelectorAll('#top-errors tbody tr'))"
                   ".filter(r => !r.hidden).map(r => r.textContent); })()")
        assert 1 <= len(shown) < total and all("onerror" in row for row in shown)
        assert console_problems(page) == []


def test_the_policy_blocks_what_escaping_would_have_missed(bundle, tmp_path):
    """The checks above can fail: markup injected past the escaping (here by hand) shows up as
    console errors and a request attempt, and the page's Content-Security-Policy refuses both
    the script and the request."""
    tampered = tmp_path / "tampered.html"
    tampered.write_text(bundle["page"].read_text().replace(
        "<footer>", '<img src="http://127.0.0.1:9/x.png"><script>alert(1)</script><footer>'))
    url = tampered.as_uri()
    with open_page(url, tmp_path / "profile") as page:
        assert page.of("Page.javascriptDialogOpening") == []
        assert len(console_problems(page)) >= 2
        assert requests_other_than(page, url) == ["http://127.0.0.1:9/x.png"]
        failed = [e["params"] for e in page.of("Network.loadingFailed")]
        assert [f.get("blockedReason") for f in failed] == ["csp"]


def test_jcdiag_report_writes_the_page_beside_the_bundle(bundle, tmp_path):
    r = jcdiag("report", str(bundle["bundle"]), "--password-file", str(bundle["pw"]), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    page = Path(result["report"])
    assert page == bundle["bundle"].with_suffix(".html") and result["bytes"] == page.stat().st_size
    text = page.read_text()
    bundle_id = bundle["summary"]["bundle_id"]
    assert f'href="{bundle_id}/summary.json"' in text          # links into <BUNDLE-ID>/ beside the page
    assert not list(bundle["bundle"].parent.glob(".*partial"))
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    r = jcdiag("report", str(bundle["bundle"]), "--password-file", str(wrong), "--out", str(tmp_path / "x.html"))
    assert r.returncode == 1 and "wrong password" in r.stderr and r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrong"]
    out = tmp_path / "mine.html"
    r = jcdiag("report", str(bundle["bundle"]), "--password-file", str(bundle["pw"]), "--out", str(out))
    assert r.returncode == 0 and out.is_file() and f"Report: {out}" in r.stdout
