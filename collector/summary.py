"""summary.json and SUMMARY.txt: what an engineer reads first.

One dictionary built from the platform facts, the lifecycle verdict, the health
findings and the collection's manifest; SUMMARY.txt renders the same facts for
people, the support-policy verdict at the very top.
"""
from __future__ import annotations

from typing import Any, Optional

from .gather import Artifact
from .textsafe import printable

_VERDICT_WORDS = {
    "supported": "SUPPORTED: the OS is in support and up to date",
    "eol": "END OF LIFE: support policy asks for an OS update before support proceeds",
    "unpatched": "UNPATCHED: support policy asks for updates before support proceeds",
    "unknown": "UNKNOWN: the OS support status could not be determined",
}


def axes_line(life: dict[str, Any]) -> str:
    """``Release: supported (EOL 2027-04-30, 148 days left)   Patch: unknown``: the two
    questions the verdict answers, apart (bundles made before the axes show "n/a")."""
    release = str(life.get("release") or "n/a")
    if life.get("eol_date"):
        days = life.get("days_to_eol")
        left = "" if days is None else (f", {days} days left" if days >= 0 else f", {-days} days ago")
        release += f" (EOL {life['eol_date']}{left})"
    return f"  Release: {release}   Patch: {life.get('patch') or 'n/a'}"


def installed_line(life: dict[str, Any]) -> str:
    """``  Installed: 12.11   Newest known: 12.15`` (empty when neither is known)."""
    installed, latest = life.get("installed"), life.get("latest_known")
    if not installed and not latest:
        return ""
    return f"  Installed: {installed or 'unknown'}   Newest known: {latest or 'unknown'}"


def findings_lines(findings: list[dict[str, Any]]) -> list[str]:
    """Health findings for people, in their order (errors first), each with evidence and fix."""
    lines = []
    for f in findings:
        lines.append(f"  [{str(f.get('severity', '?')).upper()}] {f.get('title', '')}")
        if f.get("evidence"):
            lines.append(f"      evidence: {f['evidence']}")
        if f.get("remediation"):
            lines.append(f"      fix: {f['remediation']}")
    return lines or ["  none"]


def collection_counts(artifacts: list[Artifact]) -> dict[str, Any]:
    """Totals and the failing collectors with their reasons, for summaries and --json."""
    counts = {"collected": 0, "skipped": 0, "absent": 0, "failed": 0}
    for a in artifacts:
        counts[a.status] = counts.get(a.status, 0) + 1
    failed = [{"collector": a.collector, "source": a.source, "reason": a.reason}
              for a in artifacts if a.status == "failed"]
    return {
        "artifacts": counts,
        "bytes": sum(a.size for a in artifacts if a.status == "collected"),
        "truncated": sum(1 for a in artifacts if a.truncated),
        "failed": failed,
    }


def build_summary(*, bundle_id: str, created: str, case_id: Optional[str], platform: str,
                  root: str, os_info: dict, patch: dict, agent: dict,
                  lifecycle: Optional[dict], findings: list[dict],
                  artifacts: list[Artifact], redaction_totals: dict[str, int],
                  fact_errors: dict[str, str], log_stats: Optional[dict] = None) -> dict[str, Any]:
    """``log_stats`` is :meth:`collector.health.LogStats.to_summary` (the top error lines
    and their timeline, read by the HTML report); bundles made before it have none."""
    return {
        "bundle_id": bundle_id,
        "created": created,
        "case_id": case_id,
        "platform": platform,
        "root": root,
        "lifecycle": lifecycle,
        "findings": findings,
        "os": os_info,
        "patch": patch,
        "agent": agent,
        "collection": collection_counts(artifacts),
        "redaction": redaction_totals,
        "fact_errors": fact_errors,
        "log_stats": log_stats,
    }


def render_text(summary: dict[str, Any], report: Optional[dict] = None) -> str:
    """SUMMARY.txt: verdict first, then findings, OS, agent, the issue report, the collection."""
    out: list[str] = []

    def add(line: str) -> None:
        out.append(printable(line))          # names from the examined machine: no escapes, no forged lines

    add(f"jcdiag bundle {summary['bundle_id']}  created {summary['created']}"
        + (f"  case {summary['case_id']}" if summary.get("case_id") else ""))
    add("=" * 78)
    life = summary.get("lifecycle")
    if life:
        add(_VERDICT_WORDS.get(life.get("status"), str(life.get("status")).upper()))
        add(axes_line(life))
        if installed_line(life):
            add(installed_line(life))
        product = life.get("label") or " ".join(str(x) for x in (life.get("product"), life.get("cycle")) if x)
        if product:
            add(f"  Product: {product}   EOL: {life.get('eol_date') or 'n/a'}"
                f"   Lifecycle data: {life.get('data_date')}")
        for reason in life.get("reasons", []):
            add(f"  - {reason}")
    else:
        add("Lifecycle verdict: not available")
    add("")
    findings = summary.get("findings") or []
    add(f"Health findings ({len(findings)})")
    for line in findings_lines(findings):
        add(line)
    add("")
    os_info = summary.get("os", {})
    add("System")
    for label, key in (("OS", "name"), ("Version", "version"), ("Build", "build"),
                       ("Edition", "edition"), ("Kernel", "kernel"), ("Arch", "arch"),
                       ("Hostname", "hostname")):
        if os_info.get(key):
            add(f"  {label:<10} {os_info[key]}")
    patch = summary.get("patch", {})
    add(f"  {'Reboot':<10} {_tri(patch.get('pending_reboot'), 'pending', 'not pending')}")
    add(f"  {'Updated':<10} {patch.get('last_update') or 'unknown'}")
    if patch.get("pending_security_updates") is not None:
        add(f"  {'Security':<10} {patch['pending_security_updates']} pending security update(s)")
    add("")
    agent = summary.get("agent", {})
    add("JumpCloud agent")
    add(f"  {'Installed':<10} {_tri(agent.get('installed'), 'yes', 'no')}"
        + (f"  version {agent['version']}" if agent.get("version") else ""))
    add(f"  {'Service':<10} {agent.get('service_name') or 'n/a'}: {agent.get('service_state', 'unknown')}"
        + (f", enabled={agent['service_enabled']}" if agent.get("service_enabled") is not None else ""))
    procs = agent.get("processes", [])
    add(f"  {'Process':<10} " + ("unknown (the root is not the live system)" if procs is None else
                                 ", ".join(f"{p['name']} pid {p['pid']}" for p in procs) or "not running"))
    add("")
    if report:
        add("Issue report")
        for key in ("severity", "noticed_at", "description", "steps_taken"):
            if report.get(key):
                label = key.replace('_', ' ').capitalize()
                for n, line in enumerate(str(report[key]).splitlines() or [""]):
                    add(f"  {label if n == 0 else '':<12} {line}")
        for res in report.get("resources", []):
            add(f"  Resource     {res}")
        for att in report.get("attachments", []):
            add(f"  Attachment   {att}")
        add("")
    coll = summary.get("collection", {})
    counts = coll.get("artifacts", {})
    add(f"Collection: {counts.get('collected', 0)} collected, {counts.get('skipped', 0)} skipped, "
        f"{counts.get('absent', 0)} absent, {counts.get('failed', 0)} failed; "
        f"{coll.get('bytes', 0)} bytes, {coll.get('truncated', 0)} truncated")
    for f in coll.get("failed", []):
        add(f"  FAILED {f['collector']}: {f['source']}: {f['reason']}")
    red = summary.get("redaction") or {}
    if red:
        add("Redactions: " + ", ".join(f"{k} {v}" for k, v in sorted(red.items())))
    add("")
    add("Details: summary.json, manifest.json (every file, its source, size, sha256,")
    add("truncation and redactions), redaction.json, report.json, logs/, config/, commands/, system/")
    return "\n".join(out) + "\n"


def _tri(value: Optional[bool], yes: str, no: str) -> str:
    return "unknown" if value is None else (yes if value else no)
