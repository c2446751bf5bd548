"""A first run without surprises (issue 15): bad flag values are usage errors found before any
work, collect tells the admin what it found, help that helps, engineer commands that fit."""
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from collector.cli import main
from collector.cli_common import prompt_password
from collector.config import parse_duration
from collector.logtime import parse_when
from tests.hosts import linux_host
from tests.transfer_kit import Intake, jcdiag, make_bundle, one_json

NOW = datetime(2026, 11, 20, 12, 0, 0)


@pytest.fixture
def root(tmp_path):
    return linux_host(tmp_path / "host")


@pytest.fixture
def password(tmp_path):
    path = tmp_path / "pw.txt"
    path.write_text("correct horse battery staple\n")
    return path


# --------------------------------------------------------------------------- usage errors


def bad_values(tmp_path: Path) -> list[tuple[list[str], str]]:
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    return [
        (["--since", "yesterday"], "not a date/time or duration"),
        (["--since", "-3d"], "write 3d, not -3d"),
        (["--since", "2999-01-01"], "in the future"),
        (["--since", "3 fortnights"], "not a date/time or duration"),
        (["--noticed-at", "soon"], "not a date/time or duration"),
        (["--attach", str(tmp_path / "no-such-file")], "does not exist"),
        (["--attach", str(tmp_path)], "is a directory"),
        (["--review", "/proc/jcdiag-review"], "cannot be created"),
        (["--review", str(full)], "is not empty"),
        (["--review", str(blocker)], "is a file"),
        (["--output", str(blocker)], "is a file"),
        (["--output", str(blocker / "sub")], "cannot be created"),
        (["--root", str(tmp_path / "nowhere")], "does not exist"),
        (["--as-of", "2026-02-30"], "is not a date"),
        (["--as-of", "tomorrow"], "is not a date"),
        (["--max-runtime", "forever"], "is not a duration"),
        (["--max-file-size", "5Q"], "is not a size"),
        (["--severity", "4"], "not in the range"),
    ]


def test_every_bad_collect_value_is_a_usage_error_before_any_work(tmp_path, root, password, monkeypatch):
    started = []
    import collector.pipeline as pipeline
    monkeypatch.setattr(pipeline, "collect", lambda *a, **k: started.append(a) or pytest.fail("collected"))
    for args, why in bad_values(tmp_path):
        out = tmp_path / "out"
        base = ["collect", "--root", str(root), "--platform", "linux", "--password-file", str(password),
                "--output", str(out), "--yes"]
        r = CliRunner().invoke(main, base + args)
        assert r.exit_code == 2, (args, r.output)
        assert why in r.output, (args, r.output)
        assert not out.exists() and not started, args
    assert not Path("/proc/jcdiag-review").exists()


@pytest.mark.parametrize("args,why", [(["--as-of", "2026-13-01"], "is not a date"),
                                      (["--root", "/no/such/root"], "does not exist")])
def test_check_bad_values_are_usage_errors(args, why):
    r = CliRunner().invoke(main, ["check", *args])
    assert r.exit_code == 2 and why in r.output


def test_the_review_probe_leaves_nothing_behind(tmp_path, root):
    target = tmp_path / "a" / "b" / "review"
    r = jcdiag("collect", "--root", root, "--platform", "linux", "--review", target, "--since", "2h30m",
               "--as-of", "2026-11-20", "--yes", "--json")
    assert r.returncode in (0, 3), r.stderr
    assert (target / "SUMMARY.txt").is_file()


def test_compound_durations():
    assert parse_when("2h30m", NOW) == NOW - timedelta(hours=2, minutes=30)
    assert parse_when("1d12h", NOW) == NOW - timedelta(days=1, hours=12)
    assert parse_when(" 1w 2d ", NOW) == NOW - timedelta(days=9)
    assert parse_when("90s", NOW) == NOW - timedelta(seconds=90)
    assert parse_when("2026-11-01T08:00", NOW) == datetime(2026, 11, 1, 8)
    assert parse_duration("1h30m") == 5400 and parse_duration("45") == 45
    for bad in ("yesterday", "-3d", "+3d", "3", "2h-30m", "h", "", "1y"):
        with pytest.raises(ValueError):
            parse_when(bad, NOW)
    with pytest.raises(ValueError, match="before the year 1"):
        parse_when("999999999w", NOW)


def test_a_typed_password_needs_12_characters():
    @click.command()
    def ask():
        click.echo(f"got {prompt_password('Password')}")

    r = CliRunner().invoke(ask, input="short\nshort\ntwelve chars!\ntwelve chars!\n")
    assert r.exit_code == 0 and "at least 12 characters" in r.output and "got twelve chars!" in r.output


# --------------------------------------------------------------------------- what collect and check say


def test_collect_prints_the_verdict_and_findings_before_the_bundle_id(tmp_path, root, password):
    with open(root / "var/log/jcagent.log", "a") as log:
        log.write("2026-11-20 10:01:00 panic: runtime error: invalid memory address or nil pointer dereference\n"
                  "goroutine 1 [running]:\n")
    args = ["collect", "--root", root, "--platform", "linux", "--password-file", password, "--as-of",
            "2026-11-20", "--output", tmp_path / "out", "--yes"]
    r = jcdiag(*args)
    assert r.returncode in (0, 3), r.stderr
    lines = r.stdout.splitlines()
    first = {key: next(i for i, line in enumerate(lines) if line.startswith(key))
             for key in ("Lifecycle:", "  Release:", "Findings (", "Bundle ID:")}
    assert first["Lifecycle:"] < first["  Release:"] < first["Findings ("] < first["Bundle ID:"]
    shown = [line for line in lines[first["Findings ("] + 1:] if line.startswith("  [")]
    severities = [re.match(r"  \[(\w+)\]", line).group(1) for line in shown]
    assert severities and severities == sorted(severities, key=["ERROR", "WARNING", "INFO"].index)
    assert "  [ERROR] The agent crashed (Go panic) in jcagent.log" in lines
    assert any(line.startswith("      fix: ") for line in lines)

    r = jcdiag(*args[:-3], "--output", tmp_path / "out2", "--json", "--yes")
    data = one_json(r)
    assert {f["id"] for f in data["findings"]} >= {"agent-panic"}
    panic = next(f for f in data["findings"] if f["id"] == "agent-panic")
    assert panic["severity"] == "error" and panic["remediation"]
    assert data["lifecycle"]["installed"] == "22.04"


def test_check_shows_the_installed_point_release_beside_the_newest(tmp_path):
    root = tmp_path / "bookworm"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                                         'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
                                         'ID=debian\n')
    (root / "etc/debian_version").write_text("12.11\n")
    r = jcdiag("check", "--root", root, "--platform", "linux", "--as-of", "2026-06-01")
    assert "  Installed: 12.11   Newest known: 12.15" in r.stdout.splitlines(), r.stdout
    r = jcdiag("check", "--root", root, "--platform", "linux", "--as-of", "2026-06-01", "--json")
    life = one_json(r)["lifecycle"]
    assert life["installed"] == "12.11" and life["latest_known"] == "12.15" and life["patch"] == "behind"
    assert any("is at 12.11, behind the newest release 12.15" in reason for reason in life["patch_reasons"])
    (root / "etc/debian_version").write_text("trixie/sid\n")         # testing: no point release
    life = one_json(jcdiag("check", "--root", root, "--platform", "linux", "--as-of", "2026-06-01",
                           "--json"))["lifecycle"]
    assert life["installed"] == "12" and not any("behind the newest" in r for r in life["patch_reasons"])


# --------------------------------------------------------------------------- help


def test_bare_jcdiag_shows_help_and_exits_0():
    r = jcdiag()
    assert r.returncode == 0 and "Usage: jcdiag" in r.stdout and "Commands:" in r.stdout


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))


def test_help_lists_every_command_untruncated_and_every_command_has_examples():
    r = CliRunner().invoke(main, ["--help"], terminal_width=80)
    listing = r.output.split("Commands:")[1].split("Examples:")[0]
    for name in main.commands:
        row = next(line for line in listing.splitlines() if line.strip().startswith(name + " "))
        assert not row.rstrip().endswith("..."), row
    for path, command in all_commands(main):
        if isinstance(command, click.Group):
            continue
        text = CliRunner().invoke(main, [*path, "--help"]).output
        assert re.search(r"Examples:\n +(sudo )?jcdiag " + " ".join(path), text), path


def test_completion_script_is_available():
    r = jcdiag(env={"_JCDIAG_COMPLETE": "bash_source"})
    assert r.returncode == 0 and "_jcdiag_completion" in r.stdout.lower().replace("-", "_")


# --------------------------------------------------------------------------- engineers


def test_bundles_lists_a_cases_bundles_and_fetch_hints_fit(tmp_path):
    from collector.envelope import keygen

    _, pub = keygen(tmp_path / "support")
    made = make_bundle(tmp_path / "w", pub, case="314")
    with Intake(tmp_path / "intake-data") as intake:
        upload_token = intake.token_file(tmp_path / "up.token", "--case", "314")
        r = jcdiag("upload", made["path"], "--server", intake.url, "--token-file", upload_token, "--json")
        assert r.returncode == 0, r.stderr
        engineer = intake.token_file(tmp_path / "eng.token", "--engineer")
        listed = one_json(jcdiag("bundles", "--server", intake.url, "--token-file", engineer, "--case", "314",
                                 "--json"))
        assert [b["bundle_id"] for b in listed["bundles"]] == [made["bundle_id"]]
        assert listed["bundles"][0]["sha256"] == made["sha256"] and listed["bundles"][0]["case_id"] == "314"
        people = jcdiag("bundles", "--server", intake.url, "--token-file", engineer, "--case", "314")
        assert people.returncode == 0 and made["bundle_id"] in people.stdout
        other = jcdiag("bundles", "--server", intake.url, "--token-file", engineer, "--case", "999")
        assert other.returncode == 0 and "No bundles for case 999" in other.stdout

        # an upload token cannot list or fetch: the hint names the engineer token and fetch's own flags
        for command in (["bundles", "--case", "314"], ["fetch", made["bundle_id"], "--to", tmp_path / "f"]):
            r = jcdiag(*command, "--server", intake.url, "--token-file", upload_token)
            assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
            assert "engineer token" in r.stderr and "upload token" not in r.stderr.replace(
                "not an upload token", ""), r.stderr

        short = intake.token_file(tmp_path / "short.token", "--engineer", "--ttl", "1s")
        time.sleep(1.2)
        r = jcdiag("fetch", made["bundle_id"], "--server", intake.url, "--token-file", short, "--to", tmp_path / "f")
    assert r.returncode == 1 and "expired" in r.stderr
    assert r.stderr.lower().count("new token") + r.stderr.count("engineer token") == 1, r.stderr


def test_intake_token_refuses_a_folder_without_intake_data(tmp_path):
    r = jcdiag("intake", "token", "--engineer", "--data", tmp_path / "elsewhere")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "no intake data" in r.stderr and "intake serve --data" in r.stderr
    assert not (tmp_path / "elsewhere").exists()
