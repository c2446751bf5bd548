"""One collection run, start to end: facts, gather, summary, bundle.

``cli`` parses and prints; this module does the work in the order DESIGN.md's data
flow gives (platforms -> sources -> gather -> redact -> bundle/envelope) and
returns a :class:`CollectResult` the CLI renders for people or as JSON.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path, PurePath
from typing import Any, Callable, Optional

import platforms
from platforms.base import Platform

from . import bundle as bundle_mod
from .envelope import Recipient, new_secret
from .gather import Artifact, Gatherer, Limits
from .health import LogStats, findings as _findings
from .ids import new_bundle_id
from .redact import Redactor
from .report import IssueReport
from .sources import GeneratedSource
from .summary import build_summary, collection_counts, render_text
from .workspace import private_workspace

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_UPLOAD, EXIT_NOTHING = 0, 1, 2, 3, 4, 5


class CollectError(Exception):
    """A run that cannot proceed (exit 1); the message names the problem and the fix."""


@dataclass
class CollectOptions:
    output: Path = Path(".")
    platform: Optional[str] = None
    root: Optional[str] = None
    recipients: list[Recipient] = field(default_factory=list)
    password: Optional[str] = None
    case_id: Optional[str] = None
    limits: Limits = field(default_factory=Limits)
    report: IssueReport = field(default_factory=IssueReport)
    attachments: list[str] = field(default_factory=list)
    review: Optional[Path] = None
    as_of: Optional[date] = None
    redactor: Optional[Redactor] = None
    bundle_id: Optional[str] = None
    online_url: Optional[str] = None                  # clock-skew check against this HTTPS URL
    server: Optional[str] = None                      # intake base URL or tus endpoint
    token: Optional[str] = None                       # upload token for the case
    upload: bool = False                              # send the bundle when it is made
    ca_bundle: Optional[str] = None
    spool: Any = None                                 # collector.spool.Spool (default: per OS)
    obfuscate: bool = False                           # consistent pseudonyms for names and addresses
    map_file: Optional[Path] = None                   # pseudonym map kept across runs (0600, never bundled)
    keywords: list[str] = field(default_factory=list)  # --redact-keyword words
    platform_obj: Optional[Platform] = None          # injected in tests (replayed commands)


@dataclass
class CollectResult:
    bundle_id: str
    exit_code: int
    path: Optional[Path] = None
    sha256: str = ""
    size: int = 0
    review: Optional[Path] = None
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)
    upload: Optional[dict[str, Any]] = None           # the upload's outcome, when one was asked
    pending: list[dict[str, Any]] = field(default_factory=list)   # older spooled bundles sent too
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        counts = collection_counts(self.artifacts)
        life = self.summary.get("lifecycle") or {}
        return {
            "bundle_id": self.bundle_id,
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256 or None,
            "size": self.size,
            "review": str(self.review) if self.review else None,
            "exit_code": self.exit_code,
            "lifecycle": {key: life.get(key, default) for key, default in (
                ("status", "unknown"), ("release", "unknown"), ("patch", "unknown"),
                ("release_reasons", []), ("patch_reasons", []), ("reasons", []),
                ("label", ""), ("eol_date", None), ("days_to_eol", None), ("installed", ""),
                ("latest_known", ""))},
            "findings": list(self.summary.get("findings") or []),
            "collection": counts,
            "failed_collectors": counts["failed"],
            "redactions": self.redactions,
            "upload": self.upload,
            "pending_uploads": self.pending,
            "warnings": self.warnings,
        }


class Progress:
    """What the pipeline tells the person watching; the CLI supplies a real one."""

    def step(self, text: str) -> None: ...

    def advance(self, label: str, nbytes: int) -> None: ...

    def done(self) -> None: ...

    def sent(self, done: int, total: int) -> None:
        """Upload progress: bytes the server has confirmed of ``total``."""


def check_output_dir(path: Path) -> Path:
    """Create ``path`` if needed and prove it writable before any collecting starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".jcdiag-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CollectError(f"output directory {path} is not writable ({exc.strerror or exc}); "
                           "choose another with --output") from None
    return path


@dataclass
class Facts:
    """The platform's answers (objects, None where a fact failed) and why any failed."""

    os_info: Any = None
    patch: Any = None
    agent: Any = None
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self, name: str) -> dict:
        value = getattr(self, name)
        return value.to_dict() if value is not None else {}


def read_facts(platform: Platform) -> Facts:
    """OS, patch and agent facts; a fact that fails is recorded, not fatal."""
    facts = Facts()
    for name, getter in (("os_info", platform.os_info), ("patch", platform.patch_level),
                         ("agent", platform.agent_info)):
        try:
            setattr(facts, name, getter())
        except Exception as exc:  # one broken fact must not lose the others
            facts.errors[name] = f"{type(exc).__name__}: {exc}"
    return facts


def judge(facts: Facts, as_of: Optional[date]) -> dict:
    """The lifecycle verdict as a dict (status unknown, with the reason, when facts failed)."""
    from .lifecycle import verdict
    from platforms.base import PatchLevel

    if facts.os_info is None:
        return {"status": "unknown", "reasons": ["The OS could not be identified: "
                                                 + facts.errors.get("os_info", "")]}
    return verdict(facts.os_info, facts.patch or PatchLevel(), as_of or date.today()).to_dict()


def _generated(platform: Platform, os_info: dict, patch: dict, agent: dict) -> list[GeneratedSource]:
    sources = [
        GeneratedSource("system/os.json", "facts", lambda: os_info),
        GeneratedSource("system/patch.json", "facts", lambda: patch),
        GeneratedSource("system/agent.json", "facts", lambda: agent),
    ]
    if platform.live:
        from .snapshot import system_snapshot
        sources.append(GeneratedSource("system/psutil.json", "system-snapshot", system_snapshot))
    return sources


def agent_log_observer(stats: LogStats) -> Callable[[Artifact], Optional[LogStats]]:
    """Lets health's log statistics see jcagent.log and its rotations as gather streams them
    (already redacted), so the log is read once."""
    def observe(art: Artifact) -> Optional[LogStats]:
        base = art.name.rsplit("/", 1)[-1]
        return stats if art.collector == "agent-logs" and base.startswith("jcagent.log") else None
    return observe


def health_findings(platform: Platform, facts: Facts, log_stats: Optional[LogStats],
                    online_url: Optional[str]) -> list[dict]:
    """Health findings as dicts; a failing check becomes a finding, never a crash."""
    try:
        found = _findings(platform, facts.os_info, facts.patch, facts.agent, log_stats,
                          datetime.now().astimezone(), online_url=online_url)
    except Exception as exc:  # a broken check must not lose the bundle
        return [{"id": "health-check-failed", "severity": "warning",
                 "title": "A health check could not run", "evidence": f"{type(exc).__name__}: {exc}",
                 "remediation": "Report this to support with the bundle."}]
    return [f.to_dict() for f in found]


@dataclass
class CheckResult:
    lifecycle: dict
    findings: list[dict]
    os_info: dict
    patch: dict
    agent: dict
    errors: dict[str, str]

    @property
    def exit_code(self) -> int:
        """0 supported with no error finding; 3 when the machine needs action."""
        needs_action = (self.lifecycle.get("status") in ("eol", "unpatched")
                        or any(f.get("severity") == "error" for f in self.findings))
        return EXIT_PARTIAL if needs_action else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {"lifecycle": self.lifecycle, "findings": self.findings, "os": self.os_info,
                "patch": self.patch, "agent": self.agent, "fact_errors": self.errors,
                "exit_code": self.exit_code}


def check(platform: Platform, as_of: Optional[date] = None, online_url: Optional[str] = None,
          since: Optional[datetime] = None) -> CheckResult:
    """``jcdiag check``: verdict and findings, no bundle.

    The agent logs are still read through gather (same safety rules, same
    redaction) into a private workspace that is removed at once, to feed the
    log statistics; nothing else is collected.
    """
    facts = read_facts(platform)
    stats = LogStats(now=datetime.now())
    agent_logs = [s for s in platform.sources() if getattr(s, "collector", "") == "agent-logs"
                  and "jcagent.log" in getattr(s, "path", "")]
    with private_workspace() as work:
        gatherer = Gatherer(platform, work, Redactor(), Limits(since=since),
                            observe=agent_log_observer(stats))
        gatherer.run(agent_logs)
    return CheckResult(judge(facts, as_of), health_findings(platform, facts, stats, online_url),
                       facts.as_dict("os_info"), facts.as_dict("patch"), facts.as_dict("agent"),
                       facts.errors)


def collect(opts: CollectOptions, progress: Optional[Progress] = None) -> CollectResult:
    """Facts, gather, summary, then the sealed bundle (or the review copy)."""
    progress = progress or Progress()
    warnings: list[str] = []
    server_info, offline = _prepare_server(opts, warnings)
    _validate(opts)
    platform = opts.platform_obj or platforms.get_platform(opts.platform, opts.root)
    bundle_id = opts.bundle_id or new_bundle_id()
    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()

    progress.step("Reading system facts")
    facts = read_facts(platform)
    redactor = opts.redactor or make_redactor(opts, platform, facts)

    with private_workspace() as work:
        staging = work / "payload"
        staging.mkdir()
        # The payload takes each file's redacted bytes as they come (no staging copy), so
        # compression runs on both cores while the rest is read and redacted (a review
        # writes no bundle, only staging).
        secret, header = _seal(opts) if opts.review is None else ("", {})
        payload = bundle_mod.start_payload(work, secret) if opts.review is None else None
        try:
            progress.step("Collecting agent files and command outputs")
            log_stats = LogStats(now=datetime.now())
            artifacts, report = _gather(platform, facts, staging, redactor, log_stats, opts, progress,
                                        payload=payload)
            if payload is not None:
                payload.producer_done()       # the compressors take both cores for the backlog
            progress.done()

            red_report = redactor.report()
            if redactor.pseudonymizer is not None and opts.map_file:
                redactor.pseudonymizer.save()
            summary = build_summary(
                bundle_id=bundle_id, created=created, case_id=opts.case_id, platform=platform.family,
                root=str(platform.root), os_info=facts.as_dict("os_info"), patch=facts.as_dict("patch"),
                agent=facts.as_dict("agent"), lifecycle=judge(facts, opts.as_of),
                findings=health_findings(platform, facts, log_stats, opts.online_url),
                artifacts=artifacts, redaction_totals=red_report.get("totals", {}),
                fact_errors=facts.errors, log_stats=log_stats.to_summary())
            documents = _write_documents(staging, summary, report, artifacts, red_report, platform, opts,
                                         bundle_id, created)
            result = CollectResult(bundle_id, _exit_code(artifacts), summary=summary, artifacts=artifacts,
                                   redactions=red_report.get("totals", {}), warnings=warnings)
            if result.exit_code == EXIT_NOTHING:
                if payload is not None:
                    payload.abort()
                return result
            if payload is None:
                result.review = _write_review(staging, opts.review)
                return result
            progress.step("Compressing and encrypting the bundle")
            for name in documents:
                payload.add_file(staging / name, name)
            payload.close()
        except BaseException:
            if payload is not None:
                payload.abort()
            raise
        written = bundle_mod.seal(payload.path, opts.output, bundle_id, header)
        progress.done()
    result.path, result.sha256, result.size = written.path, written.sha256, written.size
    if opts.upload:
        _deliver(result, server_info, offline, opts, progress)
    return result


def _prepare_server(opts: CollectOptions, warnings: list[str]):
    """Pre-flight, before anything is collected: is the server there, is the token good,
    and which keys does it publish (sealed to when no ``--recipient`` is given)?

    Returns ``(ServerInfo or None, why the server is unreachable or None)``.  A
    refused token or a wrong URL stops the run now (exit 1), not after the whole
    collection.  An unreachable server (refused, DNS, timeout, TLS) does not: the
    bundle is sealed to ``--recipient``, a password, or the keys this server
    published at the last successful contact (cached in the spool folder), and
    waits in the spool; with none of those the run stops before collecting.
    """
    if not opts.server:
        if opts.upload:
            raise CollectError("--upload needs --server URL (and --token-file F for a jcdiag intake)")
        return None, None
    from .upload import UploadError, preflight

    try:
        info = preflight(opts.server, opts.token, opts.case_id, opts.ca_bundle)
    except UploadError as exc:
        if exc.final and not exc.unreachable:
            raise CollectError(f"{exc}") from None
        _offline_recipients(opts, exc)
        warnings.append(f"{exc}; the bundle will wait in the spool (jcdiag upload --pending sends it)"
                        if opts.upload else f"{exc}; sealed without asking the server for its keys")
        return None, str(exc)
    if info.is_intake and opts.upload and not opts.token:
        raise CollectError(f"{opts.server} is a jcdiag intake: uploads need its upload token for the "
                           "case: give --token-file F (jcdiag intake token --case ID makes one)")
    if info.is_intake and info.recipients:
        try:
            _spool_of(opts).save_keys(opts.server, info.recipients)
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written costs nothing now
            warnings.append(f"could not cache the server's keys in the spool folder ({exc})")
    if info.is_intake and opts.upload:
        _refresh_lifecycle(info.api_url, opts, warnings)
    if not opts.recipients and not opts.password:
        opts.recipients = _load_keys(info.recipients, opts.server)
        if not opts.recipients and opts.review is None:
            raise CollectError(f"{opts.server} publishes no support keys: give --recipient PEM or "
                               "--password-file F")
    return info, None


def _refresh_lifecycle(api_url: str, opts: CollectOptions, warnings: list[str]) -> None:
    """The intake's vetted lifecycle table, stored when newer, so this run judges with it;
    a failure is a warning (the verdict says when the data in use is stale)."""
    from .lifecycle_update import pull_from_intake

    problem = pull_from_intake(api_url, verify=opts.ca_bundle or True)
    if problem:
        warnings.append(problem)


def _spool_of(opts: CollectOptions):
    from .spool import Spool
    return opts.spool if opts.spool is not None else Spool()


def _load_keys(pems: list[bytes], server: str) -> list[Recipient]:
    from .envelope import load_recipient
    return [load_recipient(pem, f"{server} key {i + 1}") for i, pem in enumerate(pems)]


def _offline_recipients(opts: CollectOptions, exc: Exception) -> None:
    """Who the bundle is sealed to when the server cannot be asked; CollectError when nobody."""
    if opts.recipients or opts.password or opts.review is not None:
        return
    from .envelope import EnvelopeError

    try:
        opts.recipients = _load_keys(_spool_of(opts).cached_keys(opts.server), opts.server)
    except EnvelopeError:
        opts.recipients = []
    if not opts.recipients:
        raise CollectError(f"{exc}; and no support key is known to seal the bundle to (none cached from "
                           f"an earlier contact with {opts.server}): give --recipient PEM or "
                           "--password-file F; nothing was collected")


def _deliver(result: CollectResult, server_info, offline: Optional[str], opts: CollectOptions,
             progress: Progress) -> None:
    """Send the new bundle (through the spool, so nothing is lost), then what older runs left.

    Never raises: whatever goes wrong, the bundle stays in ``--output`` and its ID is
    in the result; the exit code is 4 when it was not delivered.
    """
    from .bundle import BundleError
    from .upload import deliver, send_pending

    progress.step("Uploading the bundle" if offline is None else "Queueing the bundle in the spool")
    try:
        sent = deliver(result.path, server_info or opts.server, opts.token, opts.case_id, spool=opts.spool,
                       progress=progress.sent, ca_bundle=opts.ca_bundle, send_now=offline is None)
    except (BundleError, OSError) as exc:
        progress.done()
        result.upload = {"bundle_id": result.bundle_id, "path": str(result.path), "status": "failed",
                         "error": f"{exc}; the bundle stays at {result.path}", "spooled": None}
        result.exit_code = EXIT_UPLOAD
        return
    progress.done()
    if offline is not None and sent.error and sent.error.startswith("not sent"):
        sent.error = f"not sent: {offline}"
    result.upload = sent.to_json()
    if not sent.ok:
        result.exit_code = EXIT_UPLOAD
        return
    try:
        result.pending = [r.to_json() for r in send_pending(opts.spool, skip=frozenset({result.bundle_id}),
                                                            due_only=True)
                          if r.status != "deferred"]
    except Exception as exc:  # noqa: BLE001 - older bundles must not cost this run its result
        result.warnings.append(f"spooled bundles were not sent: {exc}")


def make_redactor(opts: CollectOptions, platform: Platform, facts: Facts) -> Redactor:
    """The run's redactor: secret rules always; pseudonyms for this machine's host name,
    domain and local users with ``--obfuscate`` (the map saved only with ``--map``)."""
    pseudonymizer = None
    if opts.obfuscate:
        from .pseudonym import Pseudonymizer

        hostname = getattr(facts.os_info, "hostname", "") or ""
        users = [PurePath(h).name for h in platform.user_homes()]
        pseudonymizer = Pseudonymizer(opts.map_file, usernames=users,
                                      hostnames=[hostname, hostname.split(".")[0]] if hostname else [],
                                      domains=[hostname.split(".", 1)[1]] if "." in hostname else [])
    return Redactor(pseudonymizer=pseudonymizer, keywords=opts.keywords)


def _validate(opts: CollectOptions) -> None:
    """Everything that can be refused before any collecting starts."""
    review = opts.review
    if review is not None:
        if review.exists() and (not review.is_dir() or any(review.iterdir())):
            raise CollectError(f"review directory {review} is not an empty folder; give a new or "
                               "empty one")
        return
    if not opts.recipients and not opts.password:
        raise CollectError("no recipient key and no password: give --recipient PEM (or --server "
                           "to use the intake's keys) or --password-file F; jcdiag never writes "
                           "an unencrypted bundle")
    check_output_dir(opts.output)


def _gather(platform: Platform, facts: Facts, staging: Path, redactor: Redactor, log_stats: LogStats,
            opts: CollectOptions, progress: Progress,
            payload: Optional[Any] = None) -> tuple[list[Artifact], IssueReport]:
    """Every source, the generated facts and the attachments, streamed into ``staging``
    (into ``payload`` as they stream, when one is given)."""
    gatherer = Gatherer(platform, staging, redactor, opts.limits, progress=progress.advance,
                        observe=agent_log_observer(log_stats), payload=payload)
    for name, error in facts.errors.items():
        gatherer.artifacts.append(Artifact("", f"{name} facts", "facts", "failed", error))
    gatherer.run(platform.sources())
    gatherer.run(_generated(platform, facts.as_dict("os_info"), facts.as_dict("patch"),
                            facts.as_dict("agent")))
    for path in opts.attachments:
        gatherer.attach(path)
    report = _scrubbed_report(redactor, opts.report)
    report.attachments = [a.name.split("/", 1)[1] for a in gatherer.artifacts
                          if a.collector == "attachments" and a.status == "collected"]
    return gatherer.artifacts, report


def _exit_code(artifacts: list[Artifact]) -> int:
    """5 when no source gave anything, 3 when some collector failed, else 0."""
    if not any(a.status == "collected" and a.collector != "facts" and a.source != "generated"
               for a in artifacts):
        return EXIT_NOTHING
    return EXIT_PARTIAL if any(a.status == "failed" for a in artifacts) else EXIT_OK


def _seal(opts: CollectOptions) -> tuple[str, dict]:
    """The payload password and the header fields that let recipients recover it."""
    if opts.recipients:
        secret = new_secret()
        return secret, {"case_id": opts.case_id, "recipients": [r.seal(secret) for r in opts.recipients],
                        "password_protected": False}
    return opts.password or "", {"case_id": opts.case_id, "recipients": [], "password_protected": True}


def _scrubbed_report(redactor: Redactor, report: IssueReport) -> IssueReport:
    """The admin's own words go through the same scrubber: people paste tokens into tickets."""
    def clean(text: str) -> str:
        return redactor.scrub_bytes("report.json", text.encode("utf-8")).decode("utf-8", "replace")
    return IssueReport(description=clean(report.description), steps_taken=clean(report.steps_taken),
                       noticed_at=report.noticed_at, severity=report.severity,
                       resources=[clean(r) for r in report.resources])


#: The documents, written last (they describe everything gathered) in this order.
DOCUMENTS = ("SUMMARY.txt", "summary.json", "report.json", "manifest.json", "redaction.json")


def _write_documents(staging: Path, summary: dict, report: IssueReport, artifacts: list[Artifact],
                     red_report: dict, platform: Platform, opts: CollectOptions,
                     bundle_id: str, created: str) -> tuple[str, ...]:
    """The documents into ``staging``; their names, in the order they go into the bundle."""
    manifest = {
        "bundle_id": bundle_id,
        "created": created,
        "platform": platform.family,
        "root": str(platform.root),
        "live": platform.live,
        "limits": {"max_file_size": opts.limits.max_file_size,
                   "max_bundle_size": opts.limits.max_bundle_size,
                   "since": opts.limits.since.isoformat() if opts.limits.since else None},
        "artifacts": [a.to_dict() for a in artifacts],
    }
    report_dict = report.to_dict()
    docs = {
        "manifest.json": json.dumps(manifest, indent=2),
        "summary.json": json.dumps(summary, indent=2, default=str),
        "redaction.json": json.dumps(red_report, indent=2),
        "report.json": json.dumps(report_dict, indent=2),
        "SUMMARY.txt": render_text(summary, report_dict if not report.empty else None),
    }
    for name in DOCUMENTS:
        text = docs[name]
        (staging / name).write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
    return DOCUMENTS


def _write_review(staging: Path, review: Path) -> Path:
    """The one explicit plaintext output: exactly what the bundle would hold."""
    review.mkdir(parents=True, exist_ok=True)
    os.chmod(review, 0o700)
    for item in staging.iterdir():
        target = review / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
    return review
