"""``jcdiag spool list|retry|drop``: what waits to be uploaded, and the admin's two levers.

The spool (``collector.spool``) holds each bundle as ``pending`` (sent by the
next run) or ``held`` (refused for good, or its file is missing or damaged).
``list`` shows both with what to do; ``retry ID`` releases a held bundle and
sends it now (with a new token if given); ``drop ID`` deletes one for good,
after asking on a terminal.  Same conventions as every command: one line per
error, ``--json`` prints exactly one JSON object; exit 0 ok, 1 error, 4 the
retried bundle could not be sent.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from .cli_common import EXIT_OK, EXIT_UPLOAD, _byte_progress, _emit, _fail, _spool, _token, command_settings, examples

_CONFIG = click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                       metavar="FILE", help="Config file instead of the system-wide one.")


def _spool_from(ctx, config_file: Optional[Path], as_json: bool):
    return _spool(command_settings(ctx, {}, config_file=config_file, as_json=as_json))


def _view(spool, bundle_id: str, as_json: bool):
    """The entry for a typed ID (any case, misreadings folded), or a one-line error."""
    from .ids import normalize

    try:
        wanted = normalize(bundle_id)
    except ValueError as exc:
        _fail(exc, as_json)
    for view in spool.views():
        if view.bundle_id == wanted:
            return view
    _fail(LookupError(f"{wanted} is not in the spool ({spool.root}); `jcdiag spool list` shows what is"),
          as_json)


@click.group(name="spool", short_help="Bundles waiting to be uploaded: list, retry, drop.")
def spool_group():
    """Bundles waiting to be uploaded: list them, retry a held one, drop one."""


@spool_group.command(name="list", epilog=examples("jcdiag spool list", "jcdiag spool list --json"))
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@_CONFIG
@click.pass_context
def list_cmd(ctx, as_json, config_file):
    """Every spooled bundle: pending (sent by the next run) or held (with the reason and what to do)."""
    spool = _spool_from(ctx, config_file, as_json)
    views = spool.views()
    if as_json:
        _emit({"spool": str(spool.root), "entries": [v.to_json() for v in views]})
        return
    if not views:
        click.echo(f"Nothing waits in the spool ({spool.root}).")
        return
    for view in views:
        data = view.to_json()
        where = f"case {data.get('case_id') or '-'}, {data.get('server') or 'no server'}"
        size = f"{data['size']} bytes" if "size" in data else "size unknown"
        click.echo(f"{view.bundle_id}  {view.status:<7}  {where}, {size}, "
                   f"{data.get('attempts', 0)} attempt(s)")
        if view.reason:
            click.echo(f"    {'why' if view.status == 'held' else 'last error'}: {view.reason}")
        if data.get("action"):
            click.echo(f"    to go on: {data['action']}")


@spool_group.command(epilog=examples("jcdiag spool retry JCD-ABCD-EFGH-JKMN",
                                     "jcdiag spool retry JCD-ABCD-EFGH-JKMN --token-file new.token"))
@click.argument("bundle_id", metavar="ID")
@click.option("--token-file", type=click.Path(dir_okay=False), metavar="F",
              help="A new upload token for this bundle's case (replaces the one it was spooled with).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@click.option("--deadline", type=float, default=3600.0, hidden=True)
@_CONFIG
@click.pass_context
def retry(ctx, bundle_id, token_file, as_json, deadline, config_file):
    """Release a held bundle and send it now (exit 4 if it cannot be sent; it stays spooled)."""
    from .upload import Offer, send_entry

    spool = _spool_from(ctx, config_file, as_json)
    view = _view(spool, bundle_id, as_json)
    if view.state is None:
        _fail(ValueError(f"{view.bundle_id} cannot be retried: {view.reason}; drop it with jcdiag spool "
                         f"drop {view.bundle_id}"), as_json)
    token = _token(token_file)
    # the admin named this entry: the token is meant for it, whatever case the token says
    offer = Offer(token=token, case_id=view.state.case_id if token else None)
    result = send_entry(view.entry, offer, release=True, deadline=deadline,
                        progress=_byte_progress(f"Uploading {view.bundle_id}", as_json))
    code = EXIT_OK if result.ok else EXIT_UPLOAD
    if as_json:
        _emit({"upload": result.to_json(), "exit_code": code})
    elif result.ok:
        click.echo(f"Uploaded {result.bundle_id} ({result.size} bytes)"
                   + (": the server verified its sha256" if result.verified else ""))
    elif result.status == "held":
        click.echo(f"Held {result.bundle_id} again: {result.error}. To go on: {result.action}", err=True)
    else:
        click.echo(f"Upload of {result.bundle_id} failed: {result.error}. It stays in the spool.", err=True)
    sys.exit(code)


@spool_group.command(epilog=examples("jcdiag spool drop JCD-ABCD-EFGH-JKMN",
                                     "jcdiag spool drop JCD-ABCD-EFGH-JKMN --yes"))
@click.argument("bundle_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@_CONFIG
@click.pass_context
def drop(ctx, bundle_id, yes, as_json, config_file):
    """Delete a spooled bundle for good (asks first on a terminal; --yes does not).

    The copy in the collect --output folder, if any, is not touched.
    """
    from .spool import SpoolError

    spool = _spool_from(ctx, config_file, as_json)
    view = _view(spool, bundle_id, as_json)
    if not yes:
        if not sys.stdin.isatty() or as_json:
            _fail(ValueError(f"dropping {view.bundle_id} deletes it from the spool for good: confirm with "
                             "--yes"), as_json)
        if not click.confirm(f"Delete {view.bundle_id} ({view.status}) from the spool for good?",
                             default=False, err=True):
            click.echo("Nothing was dropped.", err=True)
            sys.exit(1)
    try:
        with view.entry.locked():
            view.entry.remove()
    except SpoolError as exc:
        _fail(exc, as_json)
    if as_json:
        _emit({"dropped": view.bundle_id, "exit_code": 0})
    else:
        click.echo(f"Dropped {view.bundle_id} from the spool.")
