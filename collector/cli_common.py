"""What every ``jcdiag`` command module shares: errors, output, secrets, settings, flag types.

The command modules (``cli``, ``cli_config``, ``cli_transfer``, ``cli_spool``,
``cli_lifecycle``) import from here and never from each other, so there is no
import cycle and each can be read alone; ``collector.cli`` alone knows them all
and registers them on the one ``main`` group.  This module imports no command
module, and nothing heavy at import time: ``jcdiag --help`` stays instant.

The flag types validate at parse time, so every bad value of a flag is a usage
error (exit 2) found before any work starts.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

import click

from .textsafe import printable

if TYPE_CHECKING:
    from .config import Settings

EXIT_OK, EXIT_ERROR, EXIT_UPLOAD = 0, 1, 4
MIN_PASSWORD_LENGTH = 12          # a typed bundle password; a password file is the admin's choice

EXIT_CODES_HELP = """\b
Exit codes:
  0  ok
  1  error (configuration, I/O, crypto)
  2  usage error
  3  bundle made, but some collectors failed
  4  bundle made, but the upload failed (bundle kept and spooled)
  5  nothing could be collected"""


def examples(*lines: str, exit_codes: str = "") -> str:
    """A click epilog: ``Examples:`` and the lines as typed (``\\b`` keeps click from re-wrapping)."""
    text = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
    return text + ("\n\n" + exit_codes if exit_codes else "")


class Fail(click.ClickException):
    """An error the user can act on: printed as one line, exit 1."""

    exit_code = 1


# --------------------------------------------------------------------------- flag types


class SizeType(click.ParamType):
    """SIZE: ``50M``, ``1G``, ``4096`` (the grammar config files use too)."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        from .config import parse_size     # the one size grammar, shared with config files

        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class WhenType(click.ParamType):
    """WHEN: an ISO date/time or a duration back from now (``2h``, ``2h30m``, ``1d12h``).

    Checked at parse time (exit 2); the text is kept, so settings that also come from
    a config file stay text, and parsed where the run starts."""

    name = "WHEN"

    def __init__(self, past_only: bool = False):
        self.past_only = past_only

    def convert(self, value, param, ctx):
        from datetime import datetime, timedelta

        from .logtime import parse_when

        try:
            when = parse_when(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if self.past_only and when > datetime.now() + timedelta(minutes=5):
            self.fail(f"{value!r} is in the future: nothing would be kept; give a past date or a "
                      "duration such as 3d", param, ctx)
        return str(value)


class DurationType(click.ParamType):
    """DURATION: ``30m``, ``2h30m``, ``7d``; checked at parse time, kept as text."""

    name = "DURATION"

    def convert(self, value, param, ctx):
        from .config import parse_duration

        try:
            parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return value


class DateType(click.ParamType):
    """DATE: ``YYYY-MM-DD``, returned as a :class:`datetime.date`."""

    name = "DATE"

    def convert(self, value, param, ctx):
        from datetime import date

        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a date: use YYYY-MM-DD", param, ctx)


EXISTING_FILE = click.Path(exists=True, dir_okay=False, readable=True)
EXISTING_DIR = click.Path(exists=True, file_okay=False)


def creatable_folder(path: Path, what: str, *, must_be_empty: bool) -> Path:
    """Prove ``path`` is (or can be made) a folder we may write, or raise BadParameter.

    A missing folder is made and removed again, with any parents this made, so a
    refused run leaves nothing and an accepted one will not fail late."""
    hint = what
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise click.BadParameter(f"{path} exists and is not a folder", param_hint=hint)
        if must_be_empty and any(path.iterdir()):
            raise click.BadParameter(f"{path} is not empty; give a new or empty folder", param_hint=hint)
        if not os.access(path, os.W_OK | os.X_OK):
            raise click.BadParameter(f"{path} is not writable by this user", param_hint=hint)
        return path
    made = []
    probe = path.absolute()
    while not probe.exists():
        made.append(probe)
        probe = probe.parent
    try:
        for folder in reversed(made):
            folder.mkdir()
    except OSError as exc:
        raise click.BadParameter(f"{path} cannot be created: {exc.strerror or exc}", param_hint=hint) from None
    finally:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                pass
    return path


# --------------------------------------------------------------------------- output


def _emit(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=None, sort_keys=False, default=str))


def _fail(exc: BaseException, as_json: bool) -> None:
    """One line (or one JSON object with ``error_kind`` when the error has a kind), exit 1."""
    if isinstance(exc, click.ClickException):
        message = exc.format_message()
    else:
        message = str(exc) if not isinstance(exc, OSError) else (
            f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
    message = printable(" ".join(message.split()))   # one line, no terminal escapes from a bundle
    if as_json:
        kind = getattr(exc, "kind", None) or ("io_error" if isinstance(exc, OSError) else None)
        details = getattr(exc, "details", None)
        _emit({"error": message, **({"error_kind": kind} if kind else {}),
               **(details if isinstance(details, dict) else {}), "exit_code": 1})
        sys.exit(1)
    raise Fail(message)


def _byte_progress(label: str, silent: bool):
    """A ``progress(done, total)`` that redraws one line on a terminal (None when not one)."""
    if silent or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        click.echo(f"\r\x1b[K{label}: {pct:3d}% ({done / 1048576:.1f} of {total / 1048576:.1f} MiB)",
                   err=True, nl=(done >= total))
    return show


# --------------------------------------------------------------------------- input


def _interactive(ctx_yes: bool, as_json: bool, quiet: bool) -> bool:
    return (not ctx_yes and not as_json and not quiet and sys.stdin.isatty()
            and sys.stderr.isatty())


def _read_secret_file(path: str, what: str) -> str:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            value = fh.readline().rstrip("\r\n")
    except OSError as exc:
        raise Fail(f"cannot read {what} file {path}: {exc.strerror or exc}")
    if not value:
        raise Fail(f"{what} file {path} is empty")
    return value


def _token(token_file: Optional[str]) -> Optional[str]:
    return _read_secret_file(token_file, "token") if token_file else None


def password_problem(password: str) -> Optional[str]:
    """Why a typed password is refused (None: it is fine)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if re.fullmatch(r"\s*", password):
        return "the password cannot be only spaces"
    return None


def prompt_password(text: str) -> str:
    """Ask on the terminal until the password is long enough (and typed twice the same)."""
    while True:
        password = click.prompt(text, hide_input=True, confirmation_prompt=True, err=True)
        problem = password_problem(password)
        if problem is None:
            return password
        click.echo(f"{problem}; try again (Ctrl-C stops)", err=True)


# --------------------------------------------------------------------------- settings


def explicit_flags(ctx: click.Context, params: Mapping[str, str]) -> dict[str, Any]:
    """``{setting: value}`` for the options typed on the command line.

    ``params`` maps setting names to the command's parameter names, e.g.
    ``{"case": "case_id", "recipients": "recipients"}``.  Click defaults and click's own
    ``envvar=`` values are left out, so they cannot hide the config file or managed
    settings (environment variables are read by :mod:`collector.config` itself).
    """
    from click.core import ParameterSource

    given = {}
    for setting, param in params.items():
        if ctx.get_parameter_source(param) == ParameterSource.COMMANDLINE:
            given[setting] = ctx.params[param]
    return given


def command_settings(ctx: click.Context, params: Mapping[str, str], *, config_file: Optional[Path] = None,
                     as_json: bool = False, quiet: bool = False, **overrides: Any) -> "Settings":
    """Load settings for a command, or end the run with exit 1 and the config problem.

    Notes (a flag ignored because a managed setting is enforced) go to stderr unless
    ``as_json``/``quiet``.  ``overrides`` reach :func:`collector.config.load_settings`
    (tests pass ``registry``, ``managed_plist``, ``system_config``, ``env``).
    """
    from platforms import current_family
    from .config import ConfigError, load_settings

    overrides.setdefault("family", current_family())
    try:
        settings = load_settings(explicit_flags(ctx, params), config_file=config_file, **overrides)
    except ConfigError as exc:
        _fail(exc, as_json)
    if not (as_json or quiet):
        for note in settings.notes:
            click.echo(f"note: {note}", err=True)
    return settings


def _spool(settings):
    from .spool import Spool
    return Spool(settings.get("spool_dir"), settings.get("spool_max_size"), settings.get("spool_max_age"))
