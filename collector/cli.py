"""The ``jcdiag`` command line: parse, call, print (for people, or one JSON object).

Thin on purpose: every command hands its work to a module (``pipeline``,
``bundle``, ``envelope``...) and only turns results and errors into text and exit
codes.  Heavy imports happen inside commands so ``jcdiag --help`` stays instant.

Exit codes (also in README.md):
  0 ok   1 error (config, I/O, crypto)   2 usage   3 bundle made, some collectors failed
  4 bundle made, upload failed (kept and spooled)   5 nothing could be collected
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import click

from . import __version__
from .textsafe import printable

from .cli_common import (EXIT_CODES_HELP, EXISTING_DIR, EXISTING_FILE, DateType, DurationType, Fail,  # noqa: F401
                         SizeType, WhenType, _emit, _fail,
                         _interactive, _read_secret_file, _spool, command_settings, creatable_folder,
                         examples, prompt_password)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             invoke_without_command=True, epilog=examples(
                 "sudo jcdiag check",
                 "sudo jcdiag collect --case 12345 --server https://intake.example.com --token-file T --upload",
                 "jcdiag COMMAND --help", exit_codes=EXIT_CODES_HELP))
@click.version_option(__version__, prog_name="jcdiag")
@click.pass_context
def main(ctx) -> None:
    """Collect JumpCloud agent diagnostics into one encrypted bundle for support.

    Shell completion: eval "$(_JCDIAG_COMPLETE=bash_source jcdiag)" (zsh_source, fish_source).
    """
    if ctx.invoked_subcommand is None:          # bare `jcdiag`: the help, and success
        click.echo(ctx.get_help())
        ctx.exit(0)


# --------------------------------------------------------------------------- collect


@main.command(short_help="Collect logs, config and facts into an encrypted bundle.", epilog=examples(
    "sudo jcdiag collect --recipient support.pub.pem --case 12345",
    "sudo jcdiag collect --server https://intake.example.com --case 12345 --token-file T --upload",
    "sudo jcdiag collect --password-file pw.txt --since 2h30m --attach error.png --obfuscate",
    "sudo jcdiag collect --review ./what-would-be-sent",
    "jcdiag collect --root /mnt/disk --platform linux --password-file pw.txt --as-of 2026-11-01",
    exit_codes=EXIT_CODES_HELP))
@click.option("--case", "case_id", metavar="ID", help="Support case the bundle belongs to.")
@click.option("--upload/--no-upload", default=False, show_default=True,
              help="Send the bundle to --server when it is made (pre-flight checked first).")
@click.option("--server", metavar="URL", envvar="JCDIAG_SERVER",
              help="Intake base URL (or any tus endpoint). Without --recipient, the bundle is sealed "
                   "to the keys the intake publishes. Env: JCDIAG_SERVER.")
@click.option("--token-file", type=click.Path(dir_okay=False), metavar="F", envvar="JCDIAG_TOKEN_FILE",
              help="File whose first line is the upload token for the case. Env: JCDIAG_TOKEN_FILE.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Folder the bundle is written to (default: config `output`, else the current folder).")
@click.option("--recipient", "recipients", multiple=True, type=click.Path(dir_okay=False),
              metavar="PEM", help="Support public key or certificate to seal the bundle to (repeatable).")
@click.option("--password-file", type=click.Path(dir_okay=False), metavar="F",
              help="Encrypt with the password on this file's first line instead of recipient keys.")
@click.option("--since", type=WhenType(past_only=True), metavar="WHEN",
              help="Keep log records from WHEN on (ISO date/time, or 2h, 2h30m, 3d, 1w).")
@click.option("--max-file-size", type=SizeType(),
              help="Per-file cap; the newest data is kept (default 50M).")
@click.option("--max-bundle-size", type=SizeType(),
              help="Cap on everything collected, before compression (default 1G).")
@click.option("--description", help="What is wrong, in detail.")
@click.option("--steps-taken", help="Troubleshooting already done.")
@click.option("--noticed-at", type=WhenType(), metavar="WHEN",
              help="When the issue was first noticed (ISO date/time, or 2h, 1d12h back from now).")
@click.option("--severity", type=click.IntRange(1, 3), metavar="1|2|3",
              help="1 entire loss, most users; 2 major loss, high impact; 3 partial, low impact.")
@click.option("--resource", "resources", multiple=True, metavar="TEXT",
              help="JumpCloud user, system, group or application involved (repeatable).")
@click.option("--attach", "attachments", multiple=True, type=EXISTING_FILE, metavar="FILE",
              help="Error message, screenshot or other file to include (repeatable).")
@click.option("--obfuscate", is_flag=True,
              help="Replace host names, domains, IP and MAC addresses, local user names and e-mail "
                   "addresses with consistent pseudonyms.")
@click.option("--map", "map_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Keep the pseudonym map in FILE (mode 0600, never bundled) so pseudonyms stay the "
                   "same across runs and machines.")
@click.option("--redact-keyword", "keywords", multiple=True, metavar="WORD",
              help="Also redact WORD wherever it appears (repeatable).")
@click.option("--review", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              callback=lambda ctx, param, value: value and creatable_folder(value, "--review", must_be_empty=True),
              help="Write the plaintext of what would be sent to DIR (new or empty) and make no bundle.")
@click.option("--root", type=EXISTING_DIR, metavar="DIR",
              help="Read another system's files (mounted disk, fixture tree).")
@click.option("--platform", "platform_name", type=click.Choice(["linux", "macos", "windows"]),
              help="OS of the files under --root (default: this OS).")
@click.option("--as-of", type=DateType(), metavar="DATE", help="Judge lifecycle as of this date (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (and the bundle ID).")
@click.option("--yes", "-y", is_flag=True, help="Never prompt; use what the flags give.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Config file instead of the system-wide one (see `jcdiag config show`).")
@click.option("--low-priority/--normal-priority", default=None,
              help="Run at low CPU and I/O priority (default: when not on a terminal).")
@click.option("--max-runtime", type=DurationType(), metavar="DURATION",
              help="Stop cleanly after this long (e.g. 30m, 1h30m).")
@click.pass_context
def collect(ctx, case_id, upload, server, token_file, output, recipients, password_file, since,
            max_file_size, max_bundle_size, description, steps_taken, noticed_at, severity, resources,
            attachments, obfuscate, map_file, keywords, review, root, platform_name, as_of, as_json, quiet, yes, config_file,
            low_priority, max_runtime):
    """Collect agent logs, config and system facts into an encrypted bundle.

    Settings not given as flags come from JCDIAG_* environment variables, MDM managed
    settings, the config file, then defaults (`jcdiag config show` lists them).
    """
    from .envelope import EnvelopeError, load_recipient_file
    from .gather import Limits
    from .logtime import parse_when
    from .pipeline import CollectError, CollectOptions, collect as run_collect
    from .report import IssueReport
    from .bundle import BundleError

    settings = command_settings(ctx, COLLECT_SETTINGS, config_file=config_file, as_json=as_json, quiet=quiet)
    case_id, server, output = settings.get("case"), settings.get("server"), settings.get("output")
    token_file = settings.get("token_file")
    recipients = [str(p) for p in settings.get("recipients")]
    since = settings.get("since")
    interactive = _interactive(yes, as_json, quiet)
    try:
        _check_root(root, platform_name)
        since_dt = _when(since, "--since", parse_when)
        noticed = _when(noticed_at, "--noticed-at", parse_when)
        as_of_date = as_of
        if review is None:
            creatable_folder(Path(output), "--output", must_be_empty=False)
        recips = [load_recipient_file(p) for p in recipients]
        password = _read_secret_file(password_file, "password") if password_file else None
        token = _read_secret_file(str(token_file), "token") if token_file else None
        if not recips and not password and review is None and interactive and not server:
            password = prompt_password("No recipient key given. Bundle password (12 or more characters)")
        if interactive:
            description = description or click.prompt("Describe the issue", default="", err=True,
                                                      show_default=False)
            steps_taken = steps_taken or click.prompt("Troubleshooting steps taken", default="",
                                                      err=True, show_default=False)
            if noticed is None:
                noticed = _when(click.prompt("When was it noticed (e.g. 2026-11-20 09:00, 2h)", default="",
                                             type=WhenType(), err=True, show_default=False) or None,
                                "noticed at", parse_when)
            if severity is None:
                severity = click.prompt("Severity (1 entire loss, 2 major, 3 partial)",
                                        type=click.IntRange(1, 3), default=3, err=True)
            if not resources:
                extra = click.prompt("JumpCloud resources involved (comma-separated)", default="",
                                     err=True, show_default=False)
                resources = tuple(r.strip() for r in extra.split(",") if r.strip())
        report = IssueReport(description=description or "", steps_taken=steps_taken or "",
                             noticed_at=noticed.isoformat() if noticed else "",
                             severity=severity, resources=list(resources))
        opts = CollectOptions(
            output=Path(output), platform=platform_name, root=root, recipients=recips, password=password,
            case_id=case_id, limits=Limits(settings.get("max_file_size"), settings.get("max_bundle_size"),
                                           since_dt),
            report=report, attachments=list(attachments), review=review, as_of=as_of_date,
            server=server, token=token, upload=upload, online_url=None, spool=_spool(settings),
            obfuscate=obfuscate or map_file is not None, map_file=map_file, keywords=list(keywords))
        # the run lock guards live collections only: --root and --review touch nothing another run owns
        result = _as_scheduled(settings, lambda: run_collect(opts, _progress(as_json or quiet)),
                               take_lock=root is None and review is None)
    except (CollectError, EnvelopeError, BundleError, OSError, AutomationStop) as exc:
        _fail(exc, as_json)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: nothing was written", err=True)
        sys.exit(130)
    _print_collect(result, as_json, quiet)
    sys.exit(result.exit_code)


def _when(text: Optional[str], what: str, parse):
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=what)


COLLECT_SETTINGS = {"case": "case_id", "server": "server", "token_file": "token_file",
                    "recipients": "recipients", "output": "output", "max_file_size": "max_file_size",
                    "max_bundle_size": "max_bundle_size", "since": "since",
                    "low_priority": "low_priority", "max_runtime": "max_runtime"}


class AutomationStop(Exception):
    """Another run holds the lock, or --max-runtime ran out: exit 1 with the reason."""


def _as_scheduled(settings, work, take_lock: bool = True):
    """One live collection at a time, at low priority when asked (or not on a terminal), within
    --max-runtime.  ``take_lock`` is False for --root and --review runs (nothing shared)."""
    from contextlib import nullcontext

    from .automation import AlreadyRunning, RuntimeLimitExceeded, lower_priority, runtime_limit, \
        single_run_lock

    if settings.get("low_priority"):
        lower_priority()
    try:
        with single_run_lock() if take_lock else nullcontext(), runtime_limit(settings.get("max_runtime")):
            return work()
    except AlreadyRunning as exc:
        raise AutomationStop(str(exc)) from None
    except RuntimeLimitExceeded as exc:
        raise AutomationStop(str(exc)) from None


def _print_collect(result, as_json: bool, quiet: bool) -> None:
    if as_json:
        _emit(result.to_json())
        return
    data = result.to_json()
    if not quiet:
        counts = data["collection"]["artifacts"]
        life = data["lifecycle"]
        from .summary import axes_line, findings_lines, installed_line
        click.echo(printable(f"Lifecycle: {life['status']}" + (f"  {life['label']}" if life.get("label") else "")))
        click.echo(axes_line(life))
        if installed_line(life):
            click.echo(printable(installed_line(life)))
        for reason in life.get("reasons", []):
            click.echo(printable(f"  - {reason}"))
        findings = data["findings"]
        click.echo(f"Findings ({len(findings)}):")
        for line in findings_lines(findings):
            click.echo(printable(line))
        click.echo(f"Collected {counts.get('collected', 0)} items ({data['collection']['bytes']} bytes); "
                   f"{counts.get('skipped', 0)} skipped, {counts.get('absent', 0)} absent, "
                   f"{counts.get('failed', 0)} failed")
        for f in data["failed_collectors"]:
            click.echo(printable(f"  failed: {f['collector']}: {f['source']}: {f['reason']}"))
        if data["redactions"]:
            click.echo("Redacted: " + ", ".join(f"{k} x{v}" for k, v in sorted(data["redactions"].items())))
        if result.review:
            click.echo(f"Review copy (plaintext, nothing sealed): {result.review}")
        for warning in data["warnings"]:
            click.echo(f"warning: {warning}", err=True)
        if result.path:
            click.echo(f"Bundle: {result.path} ({result.size} bytes, sha256 {result.sha256})")
        up = data["upload"]
        if up:
            if up["status"] == "uploaded":
                click.echo(f"Uploaded to case {result.summary.get('case_id') or '-'}: server verified sha256")
            elif up.get("spooled"):
                click.echo(f"Upload failed: {up['error']}", err=True)
                click.echo(f"The bundle is kept and spooled ({up.get('spooled')}); "
                           "`jcdiag upload --pending` sends it later.", err=True)
            else:
                click.echo(f"Upload failed: {up['error']}", err=True)
        for p in data["pending_uploads"]:
            click.echo(f"Spooled bundle {p['bundle_id']}: {p['status']}"
                       + (f" ({p['error']})" if p.get("error") else "")
                       + (f"; {p['action']}" if p.get("action") else ""))
        if result.exit_code == 5:
            click.echo("Nothing could be collected: is the agent installed, and are you root/Administrator?")
    if result.path or result.review:
        click.echo(f"Bundle ID: {result.bundle_id}")


def _progress(silent: bool):
    if silent or not sys.stderr.isatty():
        return _LogProgress(silent)
    return _TtyProgress()


class _LogProgress:
    """Non-TTY progress: one line per step on stderr (nothing when silent)."""

    def __init__(self, silent: bool):
        self.silent = silent

    def step(self, text: str) -> None:
        if not self.silent:
            click.echo(f"{text}...", err=True)

    def advance(self, label: str, nbytes: int) -> None:
        pass

    def done(self) -> None:
        pass

    def sent(self, done: int, total: int) -> None:
        pass


class _TtyProgress(_LogProgress):
    """A live one-line counter of bytes read on a terminal."""

    def __init__(self):
        super().__init__(False)
        self.bytes = 0
        self.label = ""

    def step(self, text: str) -> None:
        self.done()
        self.label = text
        click.echo(f"{text}...", err=True, nl=False)

    def advance(self, label: str, nbytes: int) -> None:
        self.bytes += nbytes
        name = printable(os.path.basename(label)[:40])
        click.echo(f"\r\x1b[K{self.label}: {self.bytes / 1048576:8.1f} MiB  {name}", err=True, nl=False)

    def sent(self, done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        click.echo(f"\r\x1b[K{self.label}: {pct:3d}% of {total / 1048576:.1f} MiB", err=True, nl=False)

    def done(self) -> None:
        if self.label:
            click.echo("", err=True)
            self.label = ""


# --------------------------------------------------------------------------- check

CHECK_EXIT_HELP = """\b
Exit codes:
  0  supported, no error finding
  1  failure
  2  usage error
  3  the machine needs action (End of Life, unpatched, or an error finding)"""


@main.command(short_help="End-of-Life and patch verdict and health findings; no bundle.", epilog=examples(
    "sudo jcdiag check", "sudo jcdiag check --json --online",
    "jcdiag check --root /mnt/disk --platform windows --as-of 2026-11-01", exit_codes=CHECK_EXIT_HELP))
@click.option("--root", type=EXISTING_DIR, metavar="DIR",
              help="Judge another system's files (mounted disk, fixture tree).")
@click.option("--platform", "platform_name", type=click.Choice(["linux", "macos", "windows"]),
              help="OS of the files under --root (default: this OS).")
@click.option("--as-of", type=DateType(), metavar="DATE", help="Judge lifecycle as of this date (default: today).")
@click.option("--online", is_flag=True, help="Also check the clock against --online-url's Date header.")
@click.option("--online-url", metavar="URL",
              help="HTTPS URL whose Date header the clock is compared with "
                   "(default: config `online_url`, else https://console.jumpcloud.com).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Config file instead of the system-wide one.")
@click.pass_context
def check(ctx, root, platform_name, as_of, online, online_url, as_json, config_file):
    """End-of-Life and patch verdict, and agent health findings; no bundle."""
    import platforms
    from .pipeline import check as run_check

    settings = command_settings(ctx, {"online_url": "online_url"}, config_file=config_file, as_json=as_json)
    online_url = settings.get("online_url")

    _check_root(root, platform_name)
    as_of_date = as_of
    try:
        result = run_check(platforms.get_platform(platform_name, root), as_of_date,
                           online_url if online else None)
    except OSError as exc:
        _fail(exc, as_json)
    if as_json:
        _emit(result.to_json())
    else:
        click.echo(render_check(result.lifecycle, result.findings), nl=False)
    sys.exit(result.exit_code)


def render_check(life: dict, findings: list[dict]) -> str:
    """The verdict and a findings table, for people."""
    lines = [f"Lifecycle: {str(life.get('status', 'unknown')).upper()}"
             + (f"  {life['label']}" if life.get("label") else "")
             + (f"  (EOL {life['eol_date']}" + (f", {life['days_to_eol']} days)" if life.get('days_to_eol')
                                                   is not None else ")") if life.get("eol_date") else "")]
    from .summary import axes_line, installed_line
    lines.append(axes_line(life))
    if installed_line(life):
        lines.append(installed_line(life))
    lines += [f"  - {r}" for r in life.get("reasons", [])]
    lines.append("")
    if not findings:
        lines.append("Findings: none")
        return "\n".join(lines) + "\n"
    width = max(len(f.get("title", "")) for f in findings)
    lines.append(f"{'SEVERITY':<9} {'FINDING':<{width}}  EVIDENCE")
    for f in findings:
        evidence = str(f.get("evidence", "")).splitlines() or [""]
        lines.append(f"{f.get('severity', ''):<9} {f.get('title', ''):<{width}}  {evidence[0]}")
        lines += [f"{'':<9} {'':<{width}}  {e}" for e in evidence[1:]]
        if f.get("remediation"):
            lines.append(f"{'':<9} fix: {f['remediation']}")
    return "\n".join(lines) + "\n"


def _check_root(root: Optional[str], platform_name: Optional[str]) -> None:
    if root is None and platform_name is not None:
        from platforms import current_family
        if platform_name != current_family():
            raise click.UsageError("--platform other than this OS needs --root DIR")


# --------------------------------------------------------------------------- keys and bundles


@main.command(epilog=examples("jcdiag keygen --out support"))
@click.option("--out", "prefix", required=True, metavar="PREFIX",
              help="Writes PREFIX.key.pem (private, mode 0600) and PREFIX.pub.pem.")
def keygen(prefix):
    """Make an RSA-3072 support key pair (PEM)."""
    from .envelope import EnvelopeError, keygen as make

    try:
        key, pub = make(prefix)
    except (EnvelopeError, OSError) as exc:
        _fail(exc, False)
    click.echo(f"private key: {key} (keep it secret; it opens bundles)")
    click.echo(f"public key:  {pub} (give it to collectors with --recipient)")


@main.command(epilog=examples("jcdiag inspect JCD-ABCD-EFGH-JKMN.7z", "jcdiag inspect JCD-ABCD-EFGH-JKMN.7z --json"))
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the header as one JSON object.")
def inspect(bundle_path, as_json):
    """Show a bundle's public header (no key needed)."""
    from .bundle import BundleError, read_header

    try:
        header = read_header(bundle_path)
    except BundleError as exc:
        _fail(exc, as_json)
    if as_json:
        _emit(header)
        return
    payload = header["payload"]                 # read_header validated every field printed here
    click.echo(f"Bundle ID:  {header['bundle_id']}")
    click.echo(f"Created:    {header['created']}  by {header['tool']['name']} {header['tool']['version']}")
    click.echo(f"Case:       {header.get('case_id') or '-'}")
    click.echo(f"Payload:    {payload['size']} bytes, sha256 {payload['sha256']}")
    if header.get("password_protected"):
        click.echo("Opened by:  password")
    for r in header.get("recipients", []):
        click.echo(f"Recipient:  {r['key_id']} ({r['algorithm']})")


def _credential_options(command):
    """``--key PEM`` and ``--password-file F``: how an engineer opens a bundle (see _credentials)."""
    command = click.option("--password-file", type=click.Path(dir_okay=False), metavar="F",
                           help="File whose first line is the bundle password.")(command)
    return click.option("--key", "key_path", type=click.Path(dir_okay=False), metavar="PEM",
                        help="Support private key the bundle is sealed to.")(command)


@main.command(name="open", short_help="Verify, decrypt and extract a bundle.", epilog=examples(
    "jcdiag open JCD-ABCD-EFGH-JKMN.7z --key support.key.pem",
    "jcdiag open JCD-ABCD-EFGH-JKMN.7z --password-file pw.txt --to ./case-12345 --report"))
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@_credential_options
@click.option("--to", "to_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="New or empty folder to extract into (default: ./BUNDLE-ID).")
@click.option("--max-extract-size", type=SizeType(), default="4G", show_default=True,
              help="Refuse a payload that declares or writes more than this.")
@click.option("--report", "with_report", is_flag=True,
              help="Also write <BUNDLE-ID>.html in the folder: the report page, linking the files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def open_cmd(bundle_path, key_path, password_file, to_dir, max_extract_size, with_report, as_json):
    """Verify a bundle's payload checksum, decrypt it and extract it.

    Extraction happens in a private folder next to the target, renamed onto it
    only when everything checked out; on any failure nothing is left behind.
    """
    from .bundle import BundleError
    from .envelope import EnvelopeError
    from .unpack import open_bundle

    try:
        opened = open_bundle(bundle_path, _credentials(key_path, password_file), to_dir, max_extract_size)
    except (BundleError, EnvelopeError, OSError, Fail) as exc:
        _fail(exc, as_json)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: nothing was extracted", err=True)
        sys.exit(130)
    page = _open_report(opened.header, opened.target, as_json) if with_report else {}
    if as_json:
        _emit({"bundle_id": opened.header["bundle_id"], "to": str(opened.target), "files": len(opened.names),
               "bytes": opened.bytes_written, "verified": True, **page})
        return
    click.echo(f"Verified payload sha256 and extracted {len(opened.names)} entries "
               f"({opened.bytes_written} bytes) to {opened.target}")
    if page:
        click.echo(f"Report: {page['report']}")
    summary = opened.target / "SUMMARY.txt"
    if summary.is_file():
        click.echo(f"Read first: {summary}")


def _open_report(header: dict, target: Path, as_json: bool) -> dict:
    """``open --report``: the page inside the extracted folder, after a successful extraction."""
    from .bundle import BundleError
    from .bundle_report import report_for_opened

    try:
        return {"report": str(report_for_opened(target, header))}
    except (BundleError, OSError) as exc:
        _fail(exc, as_json)


def _credentials(key_path: Optional[str], password_file: Optional[str]):
    """The engineer's credentials from exactly one of --key PEM or --password-file F
    (``open`` and ``report``); EnvelopeError or Fail when the file cannot be used."""
    from .envelope import load_private_key
    from .unpack import Credentials

    if bool(key_path) == bool(password_file):
        raise click.UsageError("give exactly one of --key PEM or --password-file F")
    if key_path:
        return Credentials(private_key=load_private_key(key_path))
    return Credentials(password=_read_secret_file(password_file, "password"))


@main.command(short_help="Write one self-contained HTML page about a bundle.", epilog=examples(
    "jcdiag report JCD-ABCD-EFGH-JKMN.7z --key support.key.pem",
    "jcdiag report JCD-ABCD-EFGH-JKMN.7z --password-file pw.txt --out case-12345.html"))
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@_credential_options
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Where to write the page (default: <BUNDLE-ID>.html beside the bundle).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def report(bundle_path, key_path, password_file, out, as_json):
    """Write one self-contained HTML page about a bundle: verdict, findings, the admin's
    report, error timeline, top error lines, manifest, redaction, file links.

    The page works offline (no network, no external files).  Its file links point into
    <BUNDLE-ID>/ beside the page: `jcdiag open BUNDLE --to` that folder puts the files there
    (or use `jcdiag open BUNDLE --report`, which writes the page inside the extracted folder).
    """
    from .bundle import BundleError
    from .bundle_report import report_for_bundle
    from .envelope import EnvelopeError

    try:
        page = report_for_bundle(bundle_path, _credentials(key_path, password_file), out)
    except (BundleError, EnvelopeError, OSError, Fail) as exc:
        _fail(exc, as_json)
    if as_json:
        _emit({"report": str(page), "bytes": page.stat().st_size})
        return
    click.echo(f"Report: {page} ({page.stat().st_size} bytes); open it in a browser")


if __name__ == "__main__":  # pragma: no cover
    main()

from .cli_transfer import bundles, fetch, intake_group, upload  # noqa: E402
from .cli_spool import spool_group  # noqa: E402
for _command in (upload, fetch, bundles, intake_group, spool_group):
    main.add_command(_command)
from .cli_config import config_group  # noqa: E402
from .cli_lifecycle import lifecycle_group  # noqa: E402
main.add_command(config_group)
main.add_command(lifecycle_group)
