"""Issue 12 through a whole collect: every secret form in the agent log, in config files
(attached with --attach, as an admin would) and in the output of ``ps aux``, then the
bundle opened with the stock 7z and openssl only.

``ps aux`` cannot run against a --root, so the Linux platform is given a replaying
command runner (tests/replay.py) that answers it with a recorded listing holding the
command-line forms; everything else is the real collect.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.envelope import keygen, load_recipient_file
from collector.pipeline import CollectOptions, collect
from platforms.base import CommandResult
from platforms.linux import Linux
from tests.hosts import linux_host
from tests.opener import open_with_stock_tools
from tests.replay import ReplayRunner
from tests.secret_forms import FORMS, MUST_STAY, MUST_STAY_TEXT, PS_HEAD


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """One collect holding every form; returns (opened tree, redaction report, attachments)."""
    tmp = tmp_path_factory.mktemp("v2collect")
    private, public = keygen(tmp / "support")
    root = linux_host(tmp / "root")
    log = root / "var/log/jcagent.log"
    with open(log, "a") as fh:
        fh.write(MUST_STAY_TEXT)
        for form in FORMS:
            if form.where == "log":
                fh.write(form.text)
        fh.write(MUST_STAY_TEXT)
    attachments = {}
    for form in FORMS:
        if form.where == "config":
            path = tmp / "attach" / f"{form.name}{form.suffix}"
            path.parent.mkdir(exist_ok=True)
            path.write_text(form.text)
            attachments[form.name] = path
    ps = PS_HEAD + "".join(f.text for f in FORMS if f.where == "ps")
    runner = ReplayRunner({("ps", "aux"): CommandResult(("ps", "aux"), 0, ps.encode())})
    platform = Linux(root, runner=runner, live=False)
    result = collect(CollectOptions(output=tmp / "out", platform="linux", root=str(root),
                                    recipients=[load_recipient_file(public)], platform_obj=platform,
                                    attachments=[str(p) for p in attachments.values()]))
    assert result.path is not None and result.path.exists()
    inner = open_with_stock_tools(result.path, private, tmp / "opened")
    report = json.loads((inner / "redaction.json").read_text())
    return inner, report, attachments


def _artifact(inner: Path, form, attachments) -> Path:
    if form.where == "log":
        return next(p for p in inner.rglob("jcagent.log"))
    if form.where == "ps":
        return inner / "commands" / "ps-aux.txt"
    name = attachments[form.name].name
    return next(p for p in (inner / "attachments").rglob(name))


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.name)
def test_collect_redacts_the_form_and_keeps_its_neighbours(bundle, form):
    inner, report, attachments = bundle
    path = _artifact(inner, form, attachments)
    text = path.read_text()
    for secret in form.secrets:
        assert secret not in text, f"{form.name}: {secret!r} in {path.name}"
    for kept in form.keep:
        assert kept in text, f"{form.name}: {kept!r} lost from {path.name}"
    rel = path.relative_to(inner).as_posix()
    assert sum(report["artifacts"][rel]["hits"].values()) >= 1


def test_collect_bundle_holds_no_secret_anywhere_and_keeps_the_must_stay_corpus(bundle):
    inner, report, _ = bundle
    everything = "".join(p.read_text(errors="replace") for p in inner.rglob("*") if p.is_file())
    for form in FORMS:
        for secret in form.secrets:
            assert secret not in everything, (form.name, secret)
    log = next(p for p in inner.rglob("jcagent.log")).read_text()
    for value in MUST_STAY:
        assert value in log, value


def test_collect_redaction_report_names_the_rule_and_upstream_id_of_every_hit(bundle):
    _, report, _ = bundle
    described = {r["id"]: r for r in report["rules"]}
    assert set(report["totals"]) <= set(described)
    vendor_hits = [rid for rid in report["totals"] if rid.startswith("gitleaks:")]
    assert {"gitleaks:slack-bot-token", "gitleaks:stripe-access-token", "gitleaks:gitlab-pat"} <= set(vendor_hits)
    for rid in vendor_hits:
        assert described[rid]["upstream"] == "gitleaks" and described[rid]["upstream_id"] == rid.split(":", 1)[1]
    assert report["totals"]["command-line"] >= 10
    assert report["vendor_rules"]["active"] >= 150
