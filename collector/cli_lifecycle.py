"""``jcdiag lifecycle update``: refresh the End-of-Life data the verdict is judged with.

Registered on the main group by ``collector.cli``.  The fetching, validation and
storage live in :mod:`collector.lifecycle_update` and :mod:`collector.lifecycle_data`;
this module only turns the outcome into a line for people or one JSON object.
"""
from __future__ import annotations

import click

from .cli_common import _emit, _fail, examples


@click.group(name="lifecycle")
def lifecycle_group():
    """End-of-Life data: refresh the table the verdict is judged with."""


@lifecycle_group.command(epilog=examples(
    "jcdiag lifecycle update",
    "jcdiag lifecycle update --from https://intake.example.com/",
    "jcdiag lifecycle update --json"))
@click.option("--from", "server", metavar="URL",
              help="Take the support team's copy from this intake (GET URL/api/v1/lifecycle) "
                   "instead of endoflife.date.")
@click.option("--endoflife-url", "api", metavar="URL", default="https://endoflife.date/api/v1/products/",
              show_default=True, help="endoflife.date API v1 products URL (a mirror or proxy).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
def update(server, api, as_json):
    """Fetch fresh End-of-Life data and store it on this machine.

    The data is checked strictly before it is stored (next to the spool:
    /var/lib/jcdiag/lifecycle.json as root, ~/.local/state/jcdiag/lifecycle.json
    otherwise; JCDIAG_LIFECYCLE_FILE overrides).  jcdiag judges with it while it is
    newer than the copy bundled with jcdiag.  A verdict of supported or current
    needs data at most 180 days old.
    """
    from .lifecycle_update import UpdateError, update as run

    try:
        done = run(server, api)
    except UpdateError as exc:
        _fail(exc, as_json)
    data = done.to_json()
    if as_json:
        _emit({**data, "exit_code": 0})
        return
    if done.path is None:
        click.echo(f"Kept the lifecycle data here (dated {data['previous_data_date']}): what "
                   f"{data['source']} serves is older ({data['data_date']}).")
        return
    click.echo(f"Lifecycle data of {data['data_date']} ({data['products']} products, {data['cycles']} "
               f"releases) from {data['source']}")
    click.echo(f"Stored in {done.path}; verdicts use it from now on (was {data['previous_data_date']}).")
