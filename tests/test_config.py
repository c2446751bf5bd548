"""Settings: every source, the precedence between them, enforcement, and every kind of bad value."""
from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from collector.cli_common import command_settings, explicit_flags
from collector.config import (POLICY_KEY, ConfigError, display_value, load_settings, mask_url,
                              parse_bool, parse_duration, parse_size, system_config_path)
from platforms.winregistry import DictRegistryReader

REPO = Path(__file__).resolve().parent.parent


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_plist(path: Path, data: dict, fmt=plistlib.FMT_BINARY) -> Path:
    """The managed preferences file as macOS writes it (binary plist by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        plistlib.dump(data, fh, fmt=fmt)
    return path


def policy_registry(values: dict) -> DictRegistryReader:
    """``HKLM\\SOFTWARE\\Policies\\JumpCloud\\jcdiag`` holding ``values`` (as winreg returns them)."""
    return DictRegistryReader({"HKLM": {"SOFTWARE": {"Policies": {"JumpCloud": {"jcdiag": values}}}}})


@pytest.fixture
def paths(tmp_path):
    """Where the system file and the managed plist live in these tests (never the real ones)."""
    return {"system_config": tmp_path / "etc/jcdiag/config.toml",
            "managed_plist": tmp_path / "Managed Preferences/com.jumpcloud.jcdiag.plist"}


def load(paths, flags=None, env=None, family="macos", **kw):
    kw.setdefault("interactive", True)
    return load_settings(flags or {}, family=family, env=env or {}, system_config=paths["system_config"],
                         managed_plist=paths["managed_plist"] if family == "macos" else None, **kw)


# --------------------------------------------------------------------------- defaults and single sources


def test_defaults_when_nothing_is_configured(paths):
    s = load(paths)
    assert {x.source for x in s.items()} == {"default"}
    assert s.get("server") is None and s.get("recipients") == ()
    assert s.get("max_file_size") == 50 * 1024 ** 2 and s.get("max_bundle_size") == 1024 ** 3
    assert s.get("spool_max_age") == 30 * 86400 and s.get("online_url") == "https://console.jumpcloud.com"
    assert s.sources_read == []


@pytest.mark.parametrize("interactive,expected", [(True, False), (False, True)])
def test_low_priority_defaults_to_true_only_for_unattended_runs(paths, interactive, expected):
    s = load(paths, interactive=interactive)
    assert s.get("low_priority") is expected and s.source("low_priority") == "default"


def test_config_file_values_types_and_relative_paths(paths):
    f = write_toml(paths["system_config"], """
server = "https://intake.example.com/"
token_file = "token"
recipients = ["keys/support.pub.pem", "/abs/other.pem"]
case = 123456
output = "~/bundles"
max_file_size = "20M"
max_bundle_size = 1048576
spool_dir = "/var/spool/jcdiag"
spool_max_size = "500M"
spool_max_age = "14d"
since = "3d"
online_url = "https://time.example.org"
low_priority = false
max_runtime = "30m"
""")
    s = load(paths)
    etc = f.parent
    assert s.get("server") == "https://intake.example.com/"          # kept as written
    assert s.get("token_file") == etc / "token"
    assert s.get("recipients") == (etc / "keys/support.pub.pem", Path("/abs/other.pem"))
    assert s.get("case") == "123456"
    assert s.get("output") == Path.home() / "bundles"
    assert s.get("max_file_size") == 20 * 1024 ** 2 and s.get("max_bundle_size") == 1048576
    assert s.get("spool_max_size") == 500 * 1024 ** 2 and s.get("spool_max_age") == 14 * 86400
    assert s.get("since") == "3d" and s.get("max_runtime") == 1800 and s.get("low_priority") is False
    assert {x.source for x in s.items()} == {f"file {f}"}
    assert s.sources_read == [f"file {f}"]


def test_explicit_config_file_replaces_the_system_file(paths, tmp_path):
    write_toml(paths["system_config"], 'case = "system"\nserver = "https://system.example.com"\n')
    mine = write_toml(tmp_path / "mine.toml", 'case = "mine"\n')
    s = load(paths, config_file=mine)
    assert s.get("case") == "mine" and s.source("case") == f"file {mine}"
    assert s.get("server") is None and s.source("server") == "default"


def test_jcdiag_config_env_names_the_file_and_flag_beats_it(paths, tmp_path):
    by_env = write_toml(tmp_path / "env.toml", 'case = "from-env-file"\n')
    by_flag = write_toml(tmp_path / "flag.toml", 'case = "from-flag-file"\n')
    assert load(paths, env={"JCDIAG_CONFIG": str(by_env)}).get("case") == "from-env-file"
    assert load(paths, env={"JCDIAG_CONFIG": str(by_env)}, config_file=by_flag).get("case") == "from-flag-file"


def test_missing_explicit_file_is_an_error_missing_system_file_is_not(paths, tmp_path):
    assert load(paths).get("case") is None
    with pytest.raises(ConfigError, match=r"nope.toml: no such config file"):
        load(paths, config_file=tmp_path / "nope.toml")


def test_env_values_name_their_variable(paths):
    env = {"JCDIAG_SERVER": "https://env.example.com", "JCDIAG_TOKEN_FILE": "/etc/jcdiag/token",
           "JCDIAG_RECIPIENTS": os.pathsep.join(["/k/a.pem", "/k/b.pem"]), "JCDIAG_LOW_PRIORITY": "no",
           "JCDIAG_MAX_RUNTIME": "2h", "JCDIAG_SPOOL": "/srv/spool", "UNRELATED": "x"}
    s = load(paths, env=env)
    assert s.get("recipients") == (Path("/k/a.pem"), Path("/k/b.pem"))
    assert s.source("recipients") == "env JCDIAG_RECIPIENTS"
    assert s.get("low_priority") is False and s.get("max_runtime") == 7200
    assert s.get("spool_dir") == Path("/srv/spool") and s.source("spool_dir") == "env JCDIAG_SPOOL"
    assert s.source("server") == "env JCDIAG_SERVER" and s.source("token_file") == "env JCDIAG_TOKEN_FILE"


def test_spool_dir_variable_wins_over_its_older_alias(paths):
    s = load(paths, env={"JCDIAG_SPOOL_DIR": "/new", "JCDIAG_SPOOL": "/old"})
    assert s.get("spool_dir") == Path("/new") and s.source("spool_dir") == "env JCDIAG_SPOOL_DIR"


def test_flags_accept_parsed_and_raw_values_and_skip_unset(paths):
    s = load(paths, flags={"max_file_size": 1234, "max_bundle_size": "2G", "recipients": ("a.pem",),
                           "case": None, "output": Path("out")})
    assert s.get("max_file_size") == 1234 and s.get("max_bundle_size") == 2 * 1024 ** 3
    assert s.get("recipients") == (Path("a.pem"),) and s.get("output") == Path("out")
    assert s.source("case") == "default" and s.source("recipients") == "flag"
    with pytest.raises(ValueError, match="not settings: bogus"):
        load(paths, flags={"bogus": 1})


# --------------------------------------------------------------------------- precedence


SOURCES = ["flag", "env", "managed", "file", "default"]


def arrange(paths, present: set[str], family: str, enforced: bool = False):
    """Every source in ``present`` sets ``case`` to its own name."""
    if "file" in present:
        write_toml(paths["system_config"], 'case = "file"\n')
    managed = {"case": "managed"} if "managed" in present else {}
    registry = None
    if family == "macos" and managed:
        write_plist(paths["managed_plist"], {**managed, **({"EnforcedSettings": ["case"]} if enforced else {})})
    if family == "windows":
        registry = policy_registry({**{k.capitalize(): v for k, v in managed.items()},
                                    **({"Enforced": ["Case"]} if enforced else {})})
    env = {"JCDIAG_CASE": "env"} if "env" in present else {}
    flags = {"case": "flag"} if "flag" in present else {}
    return load(paths, flags=flags, env=env, family=family, registry=registry)


@pytest.mark.parametrize("family", ["macos", "windows"])
@pytest.mark.parametrize("drop", range(len(SOURCES)))
def test_each_source_beats_every_lower_one(paths, family, drop):
    """With the sources from ``drop`` downward present, the highest of them wins."""
    present = set(SOURCES[drop:]) - {"default"}
    s = arrange(paths, present, family)
    winner = SOURCES[drop]
    assert s.get("case") == (None if winner == "default" else winner)
    expected = {"env": "env JCDIAG_CASE", "file": f"file {paths['system_config']}"}.get(winner, winner)
    assert s.source("case") == expected


@pytest.mark.parametrize("family", ["macos", "windows"])
def test_managed_setting_overrides_a_flag_only_when_enforced(paths, family):
    plain = arrange(paths, {"flag", "env", "managed", "file"}, family, enforced=False)
    assert plain.get("case") == "flag" and plain.source("case") == "flag" and plain.notes == []
    forced = arrange(paths, {"flag", "env", "managed", "file"}, family, enforced=True)
    assert forced.get("case") == "managed" and forced.source("case") == "managed (enforced)"
    assert forced.notes == ["--case is ignored: case is enforced by managed settings"]


@pytest.mark.parametrize("family", ["macos", "windows"])
def test_enforced_managed_setting_beats_env_and_says_so(paths, family):
    s = arrange(paths, {"env", "managed"}, family, enforced=True)
    assert s.source("case") == "managed (enforced)"
    assert s.notes == ["JCDIAG_CASE is ignored: case is enforced by managed settings"]


def test_enforcement_is_per_key(paths):
    write_plist(paths["managed_plist"], {"Server": "https://fleet.example.com", "Case": "managed",
                                         "EnforcedSettings": ["Server"]})
    s = load(paths, flags={"server": "https://mine.example.com", "case": "mine"})
    assert s.get("server") == "https://fleet.example.com" and s.source("server") == "managed (enforced)"
    assert s.get("case") == "mine" and s.source("case") == "flag"


def test_macos_plist_native_types_camel_case_and_xml_format(paths):
    write_plist(paths["managed_plist"], {"TokenFile": "/etc/jcdiag/token", "MaxFileSize": 1048576,
                                         "LowPriority": True, "Recipients": ["/k/a.pem"],
                                         "spool_max_age": "7d"}, fmt=plistlib.FMT_XML)
    s = load(paths)
    assert s.get("token_file") == Path("/etc/jcdiag/token") and s.get("max_file_size") == 1048576
    assert s.get("low_priority") is True and s.get("recipients") == (Path("/k/a.pem"),)
    assert s.get("spool_max_age") == 7 * 86400
    assert s.source("token_file") == "managed"
    assert s.sources_read == [f"managed {paths['managed_plist']}"]


def test_windows_policy_key_value_types(paths):
    """REG_SZ, REG_DWORD and REG_MULTI_SZ as winreg returns them; the unnamed default is ignored."""
    reg = policy_registry({"": "", "Server": "https://fleet.example.com", "MaxBundleSize": "2G",
                           "LowPriority": 0, "Recipients": [r"C:\ProgramData\jcdiag\support.pub.pem"],
                           "Enforced": ["Server", "Recipients"]})
    s = load(paths, family="windows", registry=reg, flags={"recipients": ("mine.pem",)})
    assert s.get("max_bundle_size") == 2 * 1024 ** 3 and s.get("low_priority") is False
    assert s.get("recipients") == (Path(r"C:\ProgramData\jcdiag\support.pub.pem"),)
    assert s.source("recipients") == "managed (enforced)" and s.source("max_bundle_size") == "managed"
    assert s.sources_read == [f"managed {POLICY_KEY}"]


def test_managed_source_matches_the_family(paths):
    write_plist(paths["managed_plist"], {"Case": "plist"})
    reg = policy_registry({"Case": "registry"})
    assert load(paths, family="windows", registry=reg).get("case") == "registry"
    assert load(paths, family="linux", registry=reg).get("case") is None        # Linux has no MDM source
    assert load(paths, family="macos", registry=reg).get("case") == "plist"
    # On this (non-Windows) machine, Windows without a reader has no managed source at all.
    assert load(paths, family="windows").get("case") is None


def test_enforced_name_without_a_value_enforces_nothing(paths):
    write_plist(paths["managed_plist"], {"Case": "managed", "EnforcedSettings": ["server"]})
    s = load(paths, flags={"server": "https://mine.example.com"})
    assert s.source("server") == "flag" and s.source("case") == "managed"


def test_system_config_locations():
    assert system_config_path("linux") == Path("/etc/jcdiag/config.toml")
    assert system_config_path("macos") == Path("/Library/Application Support/jcdiag/config.toml")
    assert str(system_config_path("windows", {"ProgramData": r"D:\PD"})) == r"D:\PD\jcdiag\config.toml"


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("line,message", [
    ('max_file_size = "fifty"', 'max_file_size: "fifty" is not a size (use e.g. 50M)'),
    ("max_bundle_size = -5", 'max_bundle_size: -5 is not a size (use e.g. 50M)'),
    ('spool_max_size = true', 'spool_max_size: true is not a size (use e.g. 50M)'),
    ('spool_max_age = "fortnight"', 'spool_max_age: "fortnight" is not a duration (use e.g. 30m, 2h, 14d)'),
    ('max_runtime = "10 minutes"', 'max_runtime: "10 minutes" is not a duration (use e.g. 30m, 2h, 14d)'),
    ('low_priority = "sometimes"', 'low_priority: "sometimes" is not true or false'),
    ('server = "intake.example.com"', 'server: "intake.example.com" is not an http(s) URL'),
    ('server = "ftp://u:hunter2@files.example.com"', 'server: "ftp://u:***@files.example.com" is not an http(s) URL'),
    ('online_url = 5', 'online_url: 5 is not a URL'),
    ('token_file = ""', 'token_file: "" is not a path'),
    ('recipients = 7', 'recipients: 7 is not a list of paths'),
    ('recipients = ["ok.pem", 3]', 'recipients: 3 is not a path'),
    ('case = ""', 'case: "" is not a non-empty text'),
    ('case = "a\\u0007b"', 'case: "a\\u0007b" must be printable text of at most 128 characters'),
    ('since = "last tuesday"', 'since: "last tuesday" is not a date/time or duration'),
    ('[server]\nurl = "https://x.example.com"', 'server: {"url": "https://x.example.com"} is not a URL'),
])
def test_bad_file_value_names_file_key_and_problem(paths, line, message):
    f = write_toml(paths["system_config"], line + "\n")
    with pytest.raises(ConfigError) as info:
        load(paths)
    assert str(info.value).startswith(f"{f}: {message}"), str(info.value)
    assert "hunter2" not in str(info.value)


def test_the_documented_example_message_exactly(paths):
    f = write_toml(paths["system_config"], 'max_file_size = "fifty"\n')
    with pytest.raises(ConfigError) as info:
        load(paths)
    assert str(info.value) == f'{f}: max_file_size: "fifty" is not a size (use e.g. 50M)'


def test_unknown_key_names_it_suggests_and_lists_known_keys(paths):
    f = write_toml(paths["system_config"], 'recipents = ["a.pem"]\ncolour = "blue"\n')
    with pytest.raises(ConfigError) as info:
        load(paths)
    first, second = info.value.problems
    assert first.startswith(f'{f}: unknown key "recipents"; did you mean recipients? (known keys: server, ')
    assert "max_runtime)" in first
    assert second.startswith(f'{f}: unknown key "colour" (known keys:')


def test_every_problem_is_reported_at_once(paths):
    write_toml(paths["system_config"], 'max_file_size = "x"\nspool_max_age = "y"\n')
    with pytest.raises(ConfigError) as info:
        load(paths)
    assert len(info.value.problems) == 2 and str(info.value).count("\n") == 1


def test_toml_syntax_error_names_file_and_line(paths):
    f = write_toml(paths["system_config"], 'case = "1"\nserver = \n')
    with pytest.raises(ConfigError, match=rf"^{f}: not valid TOML: .*line 2"):
        load(paths)


def test_unreadable_or_folder_config(paths, tmp_path):
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load(paths, config_file=folder)


def test_bad_managed_plist(paths):
    write_plist(paths["managed_plist"], {"MaxFileSize": "huge", "Colour": 1, "EnforcedSettings": ["Sever"]})
    with pytest.raises(ConfigError) as info:
        load(paths)
    where = f"managed preferences {paths['managed_plist']}"
    problems = sorted(info.value.problems)
    assert len(problems) == 3
    assert problems[0].startswith(f'{where}: EnforcedSettings: unknown key "Sever"; did you mean server?')
    assert problems[1] == f'{where}: MaxFileSize: "huge" is not a size (use e.g. 50M)'
    assert problems[2].startswith(f'{where}: unknown key "Colour"')
    paths["managed_plist"].write_bytes(b"not a plist")
    with pytest.raises(ConfigError, match="not a valid property list"):
        load(paths)


def test_bad_registry_value_and_enforced_type(paths):
    reg = policy_registry({"LowPriority": 7, "Enforced": 1})
    with pytest.raises(ConfigError) as info:
        load(paths, family="windows", registry=reg)
    assert info.value.problems == [f"registry {POLICY_KEY}: LowPriority: 7 is not true or false",
                                   f"registry {POLICY_KEY}: Enforced: 1 is not a list of setting names"]


def test_bad_env_and_flag_values_name_the_variable_and_the_flag(paths):
    with pytest.raises(ConfigError) as info:
        load(paths, env={"JCDIAG_MAX_FILE_SIZE": "lots", "JCDIAG_SERVER": "nope"})
    assert info.value.problems == ['env JCDIAG_SERVER: "nope" is not an http(s) URL (use e.g. https://intake.example.com)',
                                   'env JCDIAG_MAX_FILE_SIZE: "lots" is not a size (use e.g. 50M)']
    with pytest.raises(ConfigError, match=r'^--max-runtime: "soon" is not a duration'):
        load(paths, flags={"max_runtime": "soon"})


# --------------------------------------------------------------------------- parsers and display


@pytest.mark.parametrize("text,expected", [("50M", 50 * 1024 ** 2), ("1.5GiB", 1536 * 1024 ** 2),
                                           ("200k", 204800), ("123", 123), ("2 gb", 2 * 1024 ** 3), (0, 0)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text,expected", [("14d", 14 * 86400), ("90m", 5400), ("2h", 7200), ("1w", 604800),
                                           ("30", 30), ("45s", 45), (60, 60), ("1.5h", 5400)])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("raw,expected", [("yes", True), ("Off", False), (1, True), (0, False), (True, True)])
def test_parse_bool(raw, expected):
    assert parse_bool(raw) is expected


@pytest.mark.parametrize("url,masked", [
    ("https://intake.example.com/x", "https://intake.example.com/x"),
    ("https://user:s3cret@intake.example.com", "https://user:***@intake.example.com"),
    ("https://tok@intake.example.com", "https://tok:***@intake.example.com"),
    ("https://h.example.com/f?token=abc&region=eu&X-Amz-Signature=ff",
     "https://h.example.com/f?token=***&region=eu&X-Amz-Signature=***"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_display_value_for_people_and_json():
    assert display_value("max_file_size", 50 * 1024 ** 2) == "50M"
    assert display_value("max_file_size", 50 * 1024 ** 2, for_json=True) == 50 * 1024 ** 2
    assert display_value("spool_max_age", 14 * 86400.0) == "14d"
    assert display_value("max_runtime", 90.0) == "90s"
    assert display_value("max_runtime", 5400.0) == "90m"
    assert display_value("server", "https://a:b@h.example.com") == "https://a:***@h.example.com"
    assert display_value("recipients", (Path("/a.pem"),)) == ["/a.pem"]


# --------------------------------------------------------------------------- the CLI side


def jcdiag(*args, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("JCDIAG_")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True,
                          cwd=REPO, env=full, stdin=subprocess.DEVNULL, timeout=60)


def test_config_show_prints_values_sources_and_masks_secrets(tmp_path):
    token = tmp_path / "token"
    token.write_text("TOKEN-CONTENTS-NEVER-SHOWN\n")
    cfg = write_toml(tmp_path / "c.toml", f'server = "https://svc:hunter2@intake.example.com"\n'
                                          f'token_file = "{token}"\nmax_file_size = "20M"\n')
    r = jcdiag("config", "show", "--config", str(cfg), "--json", env={"JCDIAG_CASE": "777"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["settings"]["server"] == {"value": "https://svc:***@intake.example.com", "source": f"file {cfg}"}
    assert out["settings"]["token_file"] == {"value": str(token), "source": f"file {cfg}"}
    assert out["settings"]["case"] == {"value": "777", "source": "env JCDIAG_CASE"}
    assert out["settings"]["max_file_size"]["value"] == 20 * 1024 ** 2
    assert out["sources_read"] == [f"file {cfg}"]
    human = jcdiag("config", "show", "--config", str(cfg), env={"JCDIAG_CASE": "777"})
    assert human.returncode == 0, human.stderr
    for text in (r.stdout, human.stdout, human.stderr):
        assert "hunter2" not in text and "TOKEN-CONTENTS" not in text
    rows = {line.split()[0]: line for line in human.stdout.splitlines()[2:]}
    assert rows["max_file_size"].split()[1:] == ["20M", "file", str(cfg)]
    assert rows["case"].split()[1:] == ["777", "env", "JCDIAG_CASE"]
    assert rows["max_bundle_size"].split()[1:] == ["1G", "default"]


def test_config_show_bad_config_exits_1_with_the_problem(tmp_path):
    cfg = write_toml(tmp_path / "c.toml", 'max_file_size = "fifty"\n')
    r = jcdiag("config", "show", "--config", str(cfg))
    assert r.returncode == 1 and f'{cfg}: max_file_size: "fifty" is not a size (use e.g. 50M)' in r.stderr
    r = jcdiag("config", "show", "--config", str(cfg), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["exit_code"] == 1


def test_explicit_flags_and_command_settings_ignore_click_defaults(paths):
    write_toml(paths["system_config"], 'max_file_size = "7M"\ncase = "from-file"\n')

    @click.command()
    @click.option("--case", "case_id")
    @click.option("--max-file-size", default="50M")
    @click.option("--server", envvar="JCDIAG_SERVER")
    def cmd(case_id, max_file_size, server):
        ctx = click.get_current_context()
        s = command_settings(ctx, {"case": "case_id", "max_file_size": "max_file_size", "server": "server"},
                             env={}, system_config=paths["system_config"], family="linux")
        click.echo(json.dumps({k: [str(s.get(k)), s.source(k)] for k in ("case", "max_file_size", "server")}))

    runner = CliRunner()
    out = json.loads(runner.invoke(cmd, ["--case", "cli"], env={"JCDIAG_SERVER": "https://e.example.com"}).output)
    assert out["case"] == ["cli", "flag"]
    assert out["max_file_size"] == [str(7 * 1024 ** 2), f"file {paths['system_config']}"]   # default did not win
    assert out["server"] == ["None", "default"]          # click's envvar is not a flag; env passed was {}
    bad = runner.invoke(cmd, ["--max-file-size", "huge"])
    assert bad.exit_code == 1 and '--max-file-size: "huge" is not a size' in bad.output

    @click.command()
    @click.option("--case", "case_id")
    def plain(case_id):
        click.echo(explicit_flags(click.get_current_context(), {"case": "case_id"}))
    assert runner.invoke(plain, []).output.strip() == "{}"
