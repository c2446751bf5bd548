"""``jcdiag config show``, and the helpers commands use to load their settings.

Registered on the main group by ``collector.cli``.  The settings themselves (sources,
precedence, validation) live in :mod:`collector.config`; this module only turns them
into lines for people or one JSON object.

The helpers every command shares (:func:`command_settings` included) live in
:mod:`collector.cli_common`; :mod:`collector.config` is imported inside the functions,
so ``jcdiag --help`` stays quick.

Secrets are never shown: the token file is shown by its path (its contents are never
read here) and URLs have their passwords and secret-looking query values masked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli_common import _emit, _fail, examples

PRECEDENCE = ("flags > env JCDIAG_* > managed settings > config file > defaults; "
              "an enforced managed setting wins over all")


def _shown_value(name: str, value: Any, for_json: bool) -> Any:
    from .config import display_value

    if name == "spool_dir" and value is None:
        from .spool import default_spool_dir
        return str(default_spool_dir())
    return display_value(name, value, for_json=for_json)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value) if value else "-"
    return str(value)


@click.group(name="config", short_help="Show the effective configuration and its sources.")
def config_group():
    """Show the effective configuration and where each value comes from."""


@config_group.command(name="show", epilog=examples(
    "jcdiag config show", "jcdiag config show --config /etc/jcdiag/config.toml --json"))
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Read this TOML file instead of the system-wide one.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
def show(config_file, as_json):
    """Print every setting's effective value and its source (secrets masked).

    \b
    Precedence: flags > env JCDIAG_* > managed settings > config file > defaults;
    a managed setting marked enforced wins over everything.
    """
    from platforms import current_family
    from .config import SPECS, ConfigError, load_settings

    try:
        settings = load_settings({}, family=current_family(), config_file=config_file)
    except ConfigError as exc:
        _fail(exc, as_json)
    rows = [(s.name, _shown_value(s.name, s.value, as_json), s.source) for s in settings.items()]
    if as_json:
        _emit({"settings": {name: {"value": value, "source": source} for name, value, source in rows},
               "sources_read": settings.sources_read, "notes": settings.notes,
               "precedence": PRECEDENCE})
        return
    click.echo(f"Precedence: {PRECEDENCE}")
    click.echo("Read: " + ("; ".join(settings.sources_read) or "no config file, no managed settings"))
    width = max(len(name) for name in SPECS)
    value_width = min(48, max(len(_text(value)) for _, value, _ in rows))
    for name, value, source in rows:
        click.echo(f"{name:<{width}}  {_text(value):<{value_width}}  {source}")
    for note in settings.notes:
        click.echo(f"note: {note}")
