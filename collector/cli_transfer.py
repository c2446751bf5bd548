"""``jcdiag upload``, ``jcdiag fetch`` and ``jcdiag intake serve|token``: moving bundles to support.

Registered on the main group by ``collector.cli``; the shared helpers come from
``collector.cli_common``.  Same conventions as every command: people get
short lines, ``--json`` gets exactly one JSON object on stdout, errors are one
line; exit 0 ok, 1 error, 2 usage, 4 upload failed and the bundle kept in the spool.
Heavy modules (requests, the intake) are imported inside the commands.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .textsafe import printable
from .cli_common import (EXIT_CODES_HELP, EXIT_ERROR, EXIT_OK, EXIT_UPLOAD, Fail, SizeType, _byte_progress,
                         _emit, _fail, _spool, _token, command_settings, examples)


# --------------------------------------------------------------------------- upload


@click.command(short_help="Upload bundles to a support case (or send the spooled ones).", epilog=examples(
    "jcdiag upload JCD-ABCD-EFGH-JKMN.7z --server https://intake.example.com --token-file T",
    "jcdiag upload --pending", exit_codes=EXIT_CODES_HELP))
@click.argument("bundles", nargs=-1, type=click.Path(dir_okay=False), metavar="[BUNDLE]...")
@click.option("--pending", is_flag=True, help="Send every bundle waiting in the spool.")
@click.option("--server", metavar="URL", envvar="JCDIAG_SERVER",
              help="Intake base URL (tus at URL/files/), or any tus endpoint, used exactly as given. "
                   "With --pending: only for spooled bundles that have no server. Env: JCDIAG_SERVER.")
@click.option("--token-file", type=click.Path(dir_okay=False), metavar="F", envvar="JCDIAG_TOKEN_FILE",
              help="File whose first line is the upload token for the case (not needed by a plain tus "
                   "server). With --pending: used only for spooled bundles of the token's case, or with "
                   "no token. Env: JCDIAG_TOKEN_FILE.")
@click.option("--case", "case_id", metavar="ID", help="Support case (default: the one in the bundle, or "
                                                       "the token's).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@click.option("--chunk-size", type=SizeType(), default="8M", hidden=True)
@click.option("--deadline", type=float, default=3600.0, hidden=True,
              help="Seconds to keep retrying one bundle before leaving it in the spool.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Config file instead of the system-wide one.")
@click.pass_context
def upload(ctx, bundles, pending, server, token_file, case_id, as_json, chunk_size, deadline, config_file):
    """Upload bundles to a support case; what cannot be sent now waits in the spool.

    Uploads resume where they stopped (tus), so a cut connection, a sleeping
    laptop or a killed run never sends a bundle twice in full.  A bundle leaves
    the spool only when the server has confirmed it.  A permanent refusal (401,
    403, 404, 410, 413, 422) or a missing bundle file holds a spooled bundle
    instead of retrying it forever: see `jcdiag spool list`.  With --pending,
    exit 0 means everything sendable went (held bundles are reported, with what
    to do); 4 that something sendable could not be sent.
    """
    from .bundle import BundleError, read_header
    from .spool import SpoolError
    from .upload import Offer, deliver, send_pending, token_case

    settings = command_settings(ctx, {"server": "server", "token_file": "token_file", "case": "case_id"},
                                config_file=config_file, as_json=as_json)
    server, case_id = settings.get("server"), settings.get("case")
    token_file = str(settings.get("token_file")) if settings.get("token_file") else None
    if not bundles and not pending:
        raise click.UsageError("give BUNDLE files to upload, or --pending to send what waits in the spool")
    if bundles and not server:
        raise click.UsageError("--server URL is needed to upload a BUNDLE (or set JCDIAG_SERVER)")
    if chunk_size <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--chunk-size")
    results = []
    spool = _spool(settings)
    try:
        token = _token(token_file)
        for path in bundles:
            read_header(path)                       # a bad file fails before anything is sent
        for path in bundles:
            results.append(deliver(path, server, token, case_id, spool=spool, chunk_size=chunk_size,
                                   deadline=deadline,
                                   progress=_byte_progress(f"Uploading {Path(path).name}", as_json)))
        if pending:
            sent = frozenset(r.bundle_id for r in results)
            offer = Offer(token=token, case_id=case_id or token_case(token), server=server)
            results.extend(send_pending(spool, offer, chunk_size=chunk_size, deadline=deadline, skip=sent,
                                        progress_for=lambda bid: _byte_progress(f"Uploading {bid}", as_json)))
    except (BundleError, SpoolError, OSError) as exc:
        _fail(exc, as_json)
    exit_code = _upload_exit(results[:len(bundles)], results[len(bundles):])
    if as_json:
        _emit({"uploads": [r.to_json() for r in results],
               "held": [r.bundle_id for r in results if r.status == "held"],
               "spool": str(spool.root), "exit_code": exit_code})
    else:
        _print_uploads(results, spool.root, pending)
    sys.exit(exit_code)


def _upload_exit(given, pending) -> int:
    """0 when everything sendable went; 4 when a bundle could not be sent but waits in the spool;
    1 when a given BUNDLE was refused before it could be spooled (a contradicting --case).  Held spooled bundles are reported, not
    failures: no retry can send them until someone acts."""
    if any(not r.ok and not r.spooled and r.final for r in given):
        return EXIT_ERROR
    if any(not r.ok for r in given) or any(r.sendable_failure for r in pending):
        return EXIT_UPLOAD
    return EXIT_OK


def _print_uploads(results, spool_root: Path, pending: bool) -> None:
    if pending and not results:
        click.echo(f"Nothing waits in the spool ({spool_root}).")
    for r in results:
        if r.ok:
            how = ("the server verified its sha256" if r.verified
                   else "complete at full offset (plain tus server: no whole-file check)")
            click.echo(f"Uploaded {r.bundle_id} ({r.size} bytes): {how}")
        elif r.status == "held":
            click.echo(f"Held {r.bundle_id}: {r.error}. To go on: {r.action}", err=True)
        elif r.busy:
            click.echo(f"Skipped {r.bundle_id}: {r.error}", err=True)
        else:
            where = (f" Kept in the spool ({r.spooled}); send it later with: jcdiag upload --pending"
                     if r.spooled else "")
            click.echo(f"Upload of {r.bundle_id} failed: {r.error}.{where}", err=True)


# --------------------------------------------------------------------------- fetch


@click.command(short_help="Download a bundle by its ID and verify its SHA-256.", epilog=examples(
    "jcdiag fetch JCD-ABCD-EFGH-JKMN --server https://intake.example.com --token-file engineer.token",
    "jcdiag fetch JCD-ABCD-EFGH-JKMN --server URL --token-file F --case 12345 --to ./bundles"))
@click.argument("bundle_id", metavar="BUNDLE_ID")
@click.option("--server", required=True, metavar="URL", envvar="JCDIAG_SERVER", help="Intake base URL.")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False), metavar="F",
              envvar="JCDIAG_TOKEN_FILE", help="File whose first line is an engineer token.")
@click.option("--case", "case_id", metavar="ID",
              help="The case the bundle belongs to, when the same ID exists in several cases.")
@click.option("--to", "to_dir", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, metavar="DIR", help="Folder to save BUNDLE_ID.7z in.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
def fetch(bundle_id, server, token_file, case_id, to_dir, as_json):
    """Download a bundle from the intake by its ID and verify its SHA-256.

    A cut download is resumed where it stopped (HTTP Range), in this run or the next.
    """
    from .upload import UploadError, fetch_bundle

    try:
        got = fetch_bundle(server, _token(token_file), bundle_id, to_dir,
                           progress=_byte_progress(f"Fetching {bundle_id}", as_json), case_id=case_id)
    except (UploadError, OSError) as exc:
        _fail(exc, as_json)
    if as_json:
        _emit({"bundle_id": got.bundle_id, "path": str(got.path), "sha256": got.sha256, "size": got.size,
               "case_id": got.case_id, "verified": True, "resumed_from": got.resumed_from})
        return
    note = " (already here)" if got.already_here else (
        f" (resumed at byte {got.resumed_from})" if got.resumed_from else "")
    click.echo(f"Fetched {got.bundle_id} for case {got.case_id or '-'}: {got.path}{note} "
               f"({got.size} bytes, sha256 {got.sha256} verified)")
    click.echo(f"Open it with: jcdiag open {got.path} --key SUPPORT.key.pem")


@click.command(short_help="List a case's bundles on the intake (engineers).", epilog=examples(
    "jcdiag bundles --server https://intake.example.com --token-file engineer.token --case 12345",
    "jcdiag bundles --server URL --token-file F --json"))
@click.option("--server", required=True, metavar="URL", envvar="JCDIAG_SERVER", help="Intake base URL.")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False), metavar="F",
              envvar="JCDIAG_TOKEN_FILE", help="File whose first line is an engineer token.")
@click.option("--case", "case_id", metavar="ID", help="Only this case's bundles (default: every case).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
def bundles(server, token_file, case_id, as_json):
    """List the verified bundles the intake holds for a case, newest first.

    Then `jcdiag fetch BUNDLE_ID` downloads one.
    """
    from .upload import UploadError, list_bundles

    try:
        found = list_bundles(server, _token(token_file), case_id)
    except (UploadError, OSError) as exc:
        _fail(exc, as_json)
    if as_json:
        _emit({"case_id": case_id, "bundles": found, "exit_code": 0})
        return
    if not found:
        click.echo(f"No bundles{f' for case {case_id}' if case_id else ''} on {server}.")
        return
    for b in found:
        click.echo(printable(f"{b['bundle_id']}  case {b['case_id'] or '-'}  {b['size']} bytes  "
                             f"uploaded {b['uploaded_at'] or '?'}  sha256 {b['sha256']}"))


# --------------------------------------------------------------------------- intake


@click.group(name="intake", short_help="Run the reference case-intake service; mint its tokens.")
def intake_group():
    """Run the reference case-intake service (pip install 'jcdiag[intake]' for S3)."""


_DATA_OPTION = click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
                            default="intake-data", show_default=True, metavar="DIR",
                            help="Service folder: token secret, generated support keys, local storage.")


@intake_group.command(epilog=examples(
    "jcdiag intake serve", "jcdiag intake serve --port 8080 --data /srv/jcdiag-intake",
    "jcdiag intake serve --recipient support.pub.pem --s3-endpoint https://s3.example.com --s3-bucket jcdiag"))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@_DATA_OPTION
@click.option("--recipient", "recipients", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="PEM", help="Support public key to publish (repeatable; default: a pair made in --data).")
@click.option("--s3-endpoint", metavar="URL", help="S3-compatible endpoint (credentials from the environment).")
@click.option("--s3-bucket", metavar="B", help="Bucket holding all state (default: local storage in --data).")
@click.option("--max-size", type=SizeType(), default="2G", show_default=True, help="Largest upload accepted.")
@click.option("--expire-after", metavar="DURATION", default="24h", show_default=True,
              help="Drop an unfinished upload idle this long (30m, 24h, 7d).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), metavar="F",
              help="Serve HTTPS with this PEM certificate (chain); needs --tls-key.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), metavar="F",
              help="The PEM private key of --tls-cert.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes serving the one socket (state is in storage, so any may answer).")
@click.option("--limit-concurrency", type=click.IntRange(1), default=1000, show_default=True,
              help="Open connections per process; more are answered 503.")
@click.option("--timeout-keep-alive", type=click.FloatRange(0.1), default=5.0, show_default=True,
              help="Seconds an idle connection stays open between requests.")
@click.option("--header-timeout", type=click.FloatRange(0.1), default=15.0, show_default=True,
              help="Seconds a request line and headers may take to arrive.")
@click.option("--body-timeout", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds a request body may pause (and grace before --body-min-rate applies).")
@click.option("--body-min-rate", type=SizeType(), default="32K", show_default=True,
              help="Bytes per second a request body must average.")
@click.option("--max-open-uploads", type=click.IntRange(1), default=8, show_default=True,
              help="Unfinished uploads per case (429 beyond).")
@click.option("--max-inflight", type=SizeType(), default="8G", show_default=True,
              help="Bytes announced by a case's unfinished uploads (429 beyond).")
@click.option("--min-free-disk", type=SizeType(), default="1G", show_default=True,
              help="Free disk kept in reserve; uploads that would go below it get 507.")
@click.option("--notify-url", metavar="URL", help="POST a JSON event here per verified bundle (retried).")
@click.option("--public-url", metavar="URL", help="This intake's address for engineers (content_url in events).")
@click.option("--sweep-every", type=click.FloatRange(0.1), default=300.0, hidden=True)
@click.option("--notify-delay", type=click.FloatRange(0.0), default=1.0, hidden=True)
def serve(host, port, data_dir, recipients, s3_endpoint, s3_bucket, max_size, expire_after, tls_cert, tls_key,
          workers, limit_concurrency, timeout_keep_alive, header_timeout, body_timeout, body_min_rate,
          max_open_uploads, max_inflight, min_free_disk, notify_url, public_url, sweep_every, notify_delay):
    """Serve tus uploads under /files/ and the bundle API under /api/v1/ (uvicorn; JSON log lines
    on stderr).  The same app runs under uvicorn or gunicorn directly: see README, Team deployment."""
    import ssl

    from intake import logs
    from intake.server import IntakeConfig, serve as run
    from intake.storage import StorageError
    from intake.tokens import TokenError, parse_duration

    from .envelope import EnvelopeError

    try:
        expire_seconds = parse_duration(expire_after)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expire-after")
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    for name, url in (("--notify-url", notify_url), ("--public-url", public_url)):
        if url and not url.lower().startswith(("http://", "https://")):
            raise click.BadParameter("give an http:// or https:// URL", param_hint=name)
    if body_min_rate <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--body-min-rate")
    logs.setup()
    config = IntakeConfig(data_dir=data_dir, host=host, port=port, recipients=list(recipients),
                          s3_endpoint=s3_endpoint, s3_bucket=s3_bucket, max_size=max_size,
                          expire_after=float(expire_seconds), sweep_every=sweep_every,
                          max_open_uploads=max_open_uploads, max_inflight=max_inflight,
                          min_free_disk=min_free_disk, tls_cert=tls_cert, tls_key=tls_key, workers=workers,
                          limit_concurrency=limit_concurrency, timeout_keep_alive=timeout_keep_alive,
                          header_timeout=header_timeout, body_timeout=body_timeout,
                          body_min_rate=float(body_min_rate), notify_url=notify_url, public_url=public_url,
                          notify_delay=notify_delay)
    try:
        run(config)
    except ssl.SSLError as exc:
        raise Fail(f"cannot use --tls-cert/--tls-key: {exc.reason or exc}")
    except OSError as exc:
        if exc.filename is None and exc.strerror:
            raise Fail(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port")
        _fail(exc, False)
    except (StorageError, EnvelopeError, TokenError) as exc:
        _fail(exc, False)


@intake_group.command(epilog=examples(
    "jcdiag intake token --case 12345 > upload.token",
    "jcdiag intake token --engineer --ttl 8h --data /srv/jcdiag-intake > engineer.token"))
@click.option("--case", "case_id", metavar="ID", help="Issue an upload token for this case.")
@click.option("--engineer", is_flag=True, help="Issue an engineer token (look up and download bundles).")
@click.option("--ttl", metavar="DURATION", help="Lifetime (30m, 12h, 7d). Default: 7d, engineers 12h.")
@_DATA_OPTION
def token(case_id, engineer, ttl, data_dir):
    """Print a signed, expiring token: upload-only for one case, or engineer."""
    from intake.tokens import SECRET_NAME, TokenError, issue, load_or_create_secret, parse_duration

    if bool(case_id) == engineer:
        raise click.UsageError("give exactly one of --case ID or --engineer")
    try:
        seconds = parse_duration(ttl or ("12h" if engineer else "7d"))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl")
    if not (data_dir / SECRET_NAME).is_file():     # a new secret here would sign tokens no server knows
        raise Fail(f"{data_dir} holds no intake data (no {SECRET_NAME}): run `jcdiag intake serve --data "
                   f"{data_dir}` first, or pass --data with the running intake's folder")
    try:
        secret = load_or_create_secret(data_dir)
    except (TokenError, OSError) as exc:
        _fail(exc, False)
    click.echo(issue(secret, "engineer" if engineer else "upload", case_id or None, seconds))
