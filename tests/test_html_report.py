"""collector.html_report (the page, from documents) and collector.bundle_report (reading the
documents, writing the page): hostile and old documents, links, bounds, the CLI's errors."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from collector import bundle_report, cli, html_report
from collector.bundle import BundleError
from collector.html_report import json_for_script, render, safe_link, verdict_axes

MARK = "<script>alert('x')</script><img src=x onerror=alert(1)>"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text() | st.just(MARK) | st.sampled_from(["2026-11-20T10:00", "9999-12-31T23:00", "0001-01-01T00:00"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8) | st.sampled_from(
        ["bundle_id", "status", "release", "patch", "days_to_eol", "lifecycle", "findings", "log_stats",
         "timeline", "series", "bucket_hours", "start", "end", "top_errors", "message", "artifacts",
         "name", "severity", "attachments", "totals", "rules", "noticed_at", MARK]), children, max_size=5),
    max_leaves=30)


def structure_of(page: str) -> list[str]:
    """The page's tags that could run or load something (our one chart is an svg: at most one)."""
    assert page.count("<svg") <= 1
    return re.findall(r"<(script|img|iframe|object|embed|link|meta|style|form|base)\b", page)


BASELINE = structure_of(render({}))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: json_values for k in
                                           ("bundle", "summary", "manifest", "report", "redaction")}),
       st.lists(st.text(max_size=30) | st.just(MARK), max_size=5))
def test_any_documents_render_and_nothing_hostile_becomes_markup(documents, files):
    page = render(documents, files)
    assert structure_of(page) == BASELINE
    assert "<script>alert" not in page and "<img" not in page and "onerror=alert(1)>" not in page


def test_a_summary_full_of_markup_renders_it_as_text():
    summary = {"bundle_id": MARK, "lifecycle": {"status": MARK, "reasons": [MARK], "label": MARK},
               "findings": [{"severity": MARK, "title": MARK, "evidence": MARK, "remediation": MARK}],
               "os": {"name": MARK, "hostname": MARK}, "agent": {"version": MARK, "processes": [{"name": MARK}]},
               "log_stats": {"top_errors": [{"message": MARK, "count": 3, "example": MARK}],
                             "timeline": {"bucket_hours": 1, "start": "2026-11-20T10:00",
                                          "end": "2026-11-20T12:00",
                                          "series": {MARK: {"2026-11-20T11:00": 3}}}}}
    page = render({"summary": summary, "report": {"description": MARK, "resources": [MARK],
                                                  "attachments": [MARK]},
                   "manifest": {"artifacts": [{"name": MARK, "status": MARK, "source": MARK}]},
                   "redaction": {"totals": {MARK: 1}, "rules": [{"id": MARK, "description": MARK}]}}, [MARK])
    assert structure_of(page) == BASELINE
    assert page.count(html_report.esc(MARK)) >= 15
    assert 'data-count="3"' in page


@pytest.mark.parametrize("timeline", [
    {"bucket_hours": 1, "start": "9999-12-31T22:00", "end": "9999-12-31T23:59",
     "series": {"k": {"9999-12-31T22:00": 2}}},
    {"bucket_hours": 98304, "start": "9000-01-01T00:00", "end": "9999-01-01T00:00", "series": {"k": {}}},
    {"bucket_hours": 0, "start": "2026-01-01T00:00", "end": "2026-01-02T00:00", "series": {}},
    {"bucket_hours": 1, "start": "2026-01-02T00:00", "end": "2026-01-01T00:00", "series": {"k": {"x": 1}}},
])
def test_timelines_at_the_edges_of_the_calendar_or_reversed_are_not_drawn(timeline):
    page = render({"summary": {"log_stats": {"top_errors": [{"message": "k", "count": 2}], "timeline": timeline}}})
    assert "<svg" not in page and ("timeline-empty" in page or "not in this bundle" in page)


def test_json_for_script_cannot_close_the_block():
    value = {"k": "</script><!-- \u2028\u2029 & <b>", "</script>": [1, "é"]}
    text = json_for_script(value)
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == value


@pytest.mark.parametrize("parts, link", [
    (("logs/agent/jcagent.log",), "logs/agent/jcagent.log"),
    (("JCD-1", "logs/a b#?.log"), "JCD-1/logs/a%20b%23%3F.log"),
    (("javascript:alert(1)",), "javascript%3Aalert%281%29"),
    (("C:\\Windows\\x",), "C%3A%5CWindows%5Cx"),
    (("%2e%2e/x",), "%252e%252e/x"),
    (("../etc/passwd",), None), (("a/../../b",), None), (("/etc/passwd",), None), (("a//b",), None),
    (("./a",), None), (("",), None), (("a\nb",), None), (("a\x7fb",), None), ((None,), None),
    (("ok", "/abs"), None),
])
def test_safe_link(parts, link):
    assert safe_link(*parts) == link


def test_old_bundles_say_what_they_lack_and_get_both_axes():
    old = {"bundle_id": "JCD-OLD", "lifecycle": {"status": "unpatched", "days_to_eol": 30,
                                                 "eol_date": "2027-01-01", "reasons": ["Install updates"]}}
    page = render({"summary": old, "report": None, "manifest": None})
    assert "The error timeline (errors per hour" in page and "not in this bundle" in page
    assert "The table of top error lines" in page and "report.json: not in this bundle" in page
    assert verdict_axes(old["lifecycle"]) == ("supported", "behind", True)
    assert verdict_axes({"status": "eol", "days_to_eol": -3}) == ("eol", "unknown", True)
    assert verdict_axes({"status": "unknown"}) == ("unknown", "unknown", True)
    new = {"status": "eol", "release": "eol", "patch": "current", "days_to_eol": -40,
           "release_reasons": ["R-REASON"], "patch_reasons": ["P-REASON"]}
    assert verdict_axes(new) == ("eol", "current", False)
    page = render({"summary": {"lifecycle": new}})
    assert "ended 40 days ago" in page and "R-REASON" in page and "P-REASON" in page
    assert 'badge b-current">current<' in page


def test_the_page_stays_small_whatever_the_bundle_holds():
    big = "x" * 100_000
    arts = [{"name": f"logs/f{i}.log", "status": "collected", "size": 10, "source": big} for i in range(100_000)]
    summary = {"findings": [{"title": big, "evidence": big}] * 1000,
               "log_stats": {"top_errors": [{"message": f"{i}{big}", "example": big, "count": 1}
                                            for i in range(1000)],
                             "timeline": {"bucket_hours": 1, "start": "2000-01-01T00:00", "end": "2026-01-01T00:00",
                                          "series": {f"{i}{big}": {"2000-01-01T00:00": 1} for i in range(1000)}}}}
    page = render({"summary": summary, "manifest": {"artifacts": arts},
                   "report": {"description": big * 10, "resources": [big] * 1000}},
                  [a["name"] for a in arts], total_files=len(arts))
    assert len(page.encode()) < 2 * 1024 * 1024
    assert "99500 more entries" in page and "98000 more files" in page


def test_the_policy_names_the_hashes_of_the_inline_script_and_style():
    page = render({})
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    for text in (script, style):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in html_report.CSP
    assert "default-src 'none'" in html_report.CSP and "unsafe" not in html_report.CSP


# --------------------------------------------------------------------------- reading and writing


def test_documents_that_are_links_huge_or_broken_are_not_shown(tmp_path, monkeypatch):
    (tmp_path / "secret.json").write_text('{"bundle_id": "LEAKED"}')
    (tmp_path / "summary.json").symlink_to(tmp_path / "secret.json")
    (tmp_path / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    (tmp_path / "report.json").write_text("{not json")
    (tmp_path / "redaction.json").write_text(json.dumps({"totals": {"r": 1}, "pad": "x" * 100}))
    monkeypatch.setattr(bundle_report, "MAX_DOCUMENT", 64)
    docs, problems = bundle_report.read_documents(tmp_path)
    assert docs == {"summary": None, "manifest": None, "report": None, "redaction": None}
    assert len(problems) == 4 and any("larger than" in p for p in problems)
    monkeypatch.setattr(bundle_report, "MAX_DOCUMENT", 32 << 20)
    docs, problems = bundle_report.read_documents(tmp_path)
    assert docs["redaction"]["totals"] == {"r": 1} and len(problems) == 3
    page = bundle_report.render_folder(tmp_path, {"bundle_id": "JCD-X"})
    assert "LEAKED" not in page and "summary.json cannot be read" in page


def test_list_files_never_follows_links_and_counts_what_it_leaves_out(tmp_path):
    (tmp_path / "logs/deep").mkdir(parents=True)
    for i in range(5):
        (tmp_path / f"logs/deep/f{i}").write_text("x")
    (tmp_path / "SUMMARY.txt").write_text("x")
    (tmp_path / "logs/out").symlink_to("/etc")
    (tmp_path / "logs/passwd").symlink_to("/etc/passwd")
    names, total = bundle_report.list_files(tmp_path, limit=3)
    assert total == 6 and len(names) == 3
    assert bundle_report.list_files(tmp_path)[0] == ["SUMMARY.txt"] + [f"logs/deep/f{i}" for i in range(5)]


def test_write_page_is_whole_or_absent_and_open_never_overwrites(tmp_path, monkeypatch):
    out = tmp_path / "r.html"
    bundle_report.write_page("one", out)
    bundle_report.write_page("two", out)
    assert out.read_text() == "two"
    with pytest.raises(BundleError, match="already exists"):
        bundle_report.write_page("three", out, replace=False)
    assert out.read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]

    def broken(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        bundle_report.write_page("four", tmp_path / "new.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_report_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli.main, ["report", str(tmp_path / "missing.7z"), "--password-file", "pw"])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "no such file" in r.output.lower()
    r = runner.invoke(cli.main, ["report", str(tmp_path / "missing.7z"), "--password-file", "pw", "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["error"]
    r = runner.invoke(cli.main, ["report", "x.7z"])
    assert r.exit_code == 2 and "exactly one of --key PEM or --password-file F" in r.output
