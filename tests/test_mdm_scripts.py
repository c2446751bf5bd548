"""The MDM recipes in scripts/mdm: syntax, systemd units, and what the shell recipes print and return.

The shell recipes run here against a stand-in ``jcdiag`` that records its arguments, writes
noise on stderr and exits with a chosen code, so the tests see exactly what an MDM would:
one line on stdout and jcdiag's own exit code.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

MDM = Path(__file__).resolve().parent.parent / "scripts" / "mdm"
SHELL_SCRIPTS = sorted(MDM.glob("*.sh"))
POWERSHELL_SCRIPTS = sorted(MDM.glob("*.ps1"))
RESULT = {"bundle_id": "JCD-ABCD-EFGH-JKMN", "path": "/x/JCD-ABCD-EFGH-JKMN.7z", "exit_code": 4,
          "upload": {"status": "spooled"}}


def test_every_recipe_is_there():
    names = {p.name for p in MDM.iterdir()}
    assert {"jumpcloud-command.sh", "jumpcloud-command.ps1", "jamf-policy.sh", "intune-detect.ps1",
            "intune-remediate.ps1", "jcdiag.service", "jcdiag.timer", "jcdiag.cron", "README.md"} <= names


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_syntax(script):
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert script.read_text().startswith("#!/bin/bash\n") and os.access(script, os.X_OK)


@pytest.fixture
def stub(tmp_path):
    """A stand-in jcdiag: records argv, 5000 lines of stderr, prints $STUB_OUT, exits $STUB_EXIT."""
    path = tmp_path / "bin" / "jcdiag"
    path.parent.mkdir()
    path.write_text("#!/bin/bash\n"
                    'printf "%s\\n" "$@" > "$STUB_ARGS"\n'
                    'for i in $(seq 5000); do echo "progress line $i" >&2; done\n'
                    '[ -n "$STUB_OUT" ] && printf "%s\\n" "$STUB_OUT"\n'
                    'exit "$STUB_EXIT"\n')
    path.chmod(0o755)
    return path


def run_recipe(script: str, stub: Path, tmp_path: Path, *params: str, code: int = 4, out: str | None = None,
               extra_env: dict | None = None):
    env = {"PATH": os.environ["PATH"], "STUB_ARGS": str(tmp_path / "argv"), "STUB_EXIT": str(code),
           "STUB_OUT": json.dumps(RESULT) if out is None else out, "JCDIAG_BIN": str(stub),
           "JCDIAG_BUNDLE_DIR": str(tmp_path / "bundles"), **(extra_env or {})}
    r = subprocess.run(["bash", str(MDM / script), *params], capture_output=True, text=True, env=env,
                       timeout=60, stdin=subprocess.DEVNULL)
    argv = (tmp_path / "argv").read_text().splitlines() if (tmp_path / "argv").exists() else []
    return r, argv


@pytest.mark.parametrize("code", [0, 1, 3, 4, 5])
def test_jumpcloud_command_prints_one_line_and_passes_the_exit_code(stub, tmp_path, code):
    r, argv = run_recipe("jumpcloud-command.sh", stub, tmp_path, code=code)
    assert r.returncode == code
    assert r.stdout.splitlines() == [json.dumps(RESULT)] and r.stderr == ""
    bundles = tmp_path / "bundles"
    assert argv[:5] == ["collect", "--upload", "--json", "--yes", "--output"] and argv[5] == str(bundles)
    assert "--case" not in argv and "--max-runtime" in argv
    assert (bundles.stat().st_mode & 0o777) == 0o700
    log = (bundles / "jcdiag.log").read_text()
    assert "progress line 5000" in log and "collect --upload --json --yes" in log


def test_jumpcloud_command_without_jcdiag_says_so_in_one_json_line(stub, tmp_path):
    r, argv = run_recipe("jumpcloud-command.sh", stub, tmp_path, extra_env={"JCDIAG_BIN": str(tmp_path / "none")})
    assert r.returncode == 1 and argv == []
    assert json.loads(r.stdout)["error"].startswith("jcdiag executable not found")


def test_jumpcloud_command_when_jcdiag_prints_nothing(stub, tmp_path):
    r, _ = run_recipe("jumpcloud-command.sh", stub, tmp_path, code=1, out="")
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"error": f"jcdiag printed no result; see {tmp_path}/bundles/jcdiag.log",
                                    "exit_code": 1}


def test_jumpcloud_command_rotates_a_big_log(stub, tmp_path):
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    (bundles / "jcdiag.log").write_bytes(b"x" * (1024 * 1024 + 1))
    run_recipe("jumpcloud-command.sh", stub, tmp_path)
    assert (bundles / "jcdiag.log.1").stat().st_size == 1024 * 1024 + 1
    assert (bundles / "jcdiag.log").stat().st_size < 1024 * 1024


def test_jamf_parameters_map_to_flags(stub, tmp_path):
    bundles = tmp_path / "jamf bundles"
    r, argv = run_recipe("jamf-policy.sh", stub, tmp_path, "/", "mac-042", "admin", "https://intake.example.com",
                         "00123456", "/etc/jcdiag/token", "3d", "10m", str(bundles), str(stub), code=3)
    assert r.returncode == 3 and r.stdout.splitlines() == [json.dumps(RESULT)]
    pairs = dict(zip(argv, argv[1:]))
    assert argv[:4] == ["collect", "--upload", "--json", "--yes"]
    assert pairs["--output"] == str(bundles) and pairs["--server"] == "https://intake.example.com"
    assert pairs["--case"] == "00123456" and pairs["--token-file"] == "/etc/jcdiag/token"
    assert pairs["--since"] == "3d" and pairs["--max-runtime"] == "10m"


def test_jamf_empty_parameters_leave_settings_to_the_configuration(stub, tmp_path):
    r, argv = run_recipe("jamf-policy.sh", stub, tmp_path, "/", "mac-042", "admin", "", "", "", "", "", "",
                         str(stub), code=0)
    assert r.returncode == 0
    assert not {"--server", "--case", "--token-file"} & set(argv)
    assert dict(zip(argv, argv[1:]))["--since"] == "7d"


def test_powershell_recipes_use_the_contract():
    """No PowerShell here to run them: check they call jcdiag as documented and pass its code on."""
    for script in POWERSHELL_SCRIPTS:
        text = script.read_text()
        assert "[Console]::Out.WriteLine" in text, script.name
        assert text.count("{") == text.count("}") and text.count("(") == text.count(")"), script.name
    for name in ("jumpcloud-command.ps1", "intune-remediate.ps1"):
        text = (MDM / name).read_text()
        assert "@('collect', '--upload', '--json', '--yes', '--output', $BundleDir" in text
        assert "exit $run.ExitCode" in text or "exit $code" in text
    detect = (MDM / "intune-detect.ps1").read_text()
    assert "'check --json'" in detect and detect.rstrip().endswith("exit 1")   # 1 = Intune runs remediation


@pytest.mark.skipif(not shutil.which("pwsh"), reason="PowerShell (pwsh) is not installed")
@pytest.mark.parametrize("script", POWERSHELL_SCRIPTS, ids=lambda p: p.name)
def test_powershell_syntax(script):
    command = (f"$e = $null; [System.Management.Automation.Language.Parser]::ParseFile('{script}', "
               "[ref]$null, [ref]$e) | Out-Null; if ($e.Count) { $e | ForEach-Object { $_.Message }; exit 1 }")
    r = subprocess.run(["pwsh", "-NoProfile", "-Command", command], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_units_verify_cleanly(tmp_path):
    """``systemd-analyze verify`` with the binary path pointed at a stand-in (it must exist); any
    warning (an unknown key, a bad value) fails the test, not only errors."""
    fake = tmp_path / "jcdiag"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    service = (MDM / "jcdiag.service").read_text()
    assert "ExecStart=/usr/local/bin/jcdiag collect --upload --json --yes --output /var/lib/jcdiag/bundles" in service
    (tmp_path / "jcdiag.service").write_text(service.replace("/usr/local/bin/jcdiag", str(fake)))
    shutil.copy(MDM / "jcdiag.timer", tmp_path / "jcdiag.timer")
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "jcdiag.service"), str(tmp_path / "jcdiag.timer")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "" and r.stdout.strip() == "", r.stdout + r.stderr
    timer = (MDM / "jcdiag.timer").read_text()
    calendar = re.search(r"^OnCalendar=(.+)$", timer, re.M).group(1)
    r = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_cron_file_lines_are_well_formed():
    field = r"(\*|\d+|\*/\d+|\d+-\d+|\d+(,\d+)+)"
    jobs = []
    for line in (MDM / "jcdiag.cron").read_text().splitlines():
        if not line.strip() or line.startswith("#") or re.match(r"^[A-Z]+=", line):
            continue
        assert re.match(rf"^{field} {field} {field} {field} {field} root jcdiag ", line), line
        assert "%" not in line                          # cron turns % into newlines
        jobs.append(line)
    assert any(" collect --upload --json --yes --output /var/lib/jcdiag/bundles" in j for j in jobs)
    assert any(" upload --pending --json" in j for j in jobs)
