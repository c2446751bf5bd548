"""One run at a time, low priority, and the run-time limit, each in real processes."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from collector.automation import (AlreadyRunning, RuntimeLimitExceeded, lower_priority, runtime_limit,
                                  single_run_lock)

REPO = Path(__file__).resolve().parent.parent
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and flock")


def python(code: str, *args: str, **kw) -> subprocess.Popen:
    """A child python running ``code`` with the repository importable."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


HOLD_LOCK = """
    import sys
    from collector.automation import single_run_lock
    with single_run_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()
"""

TRY_LOCK = """
    import sys
    from collector.automation import AlreadyRunning, single_run_lock
    try:
        with single_run_lock(sys.argv[1]):
            print("got it")
    except AlreadyRunning as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
"""


# --------------------------------------------------------------------------- lock


def test_second_process_fails_at_once_naming_the_holder_and_the_lock(tmp_path):
    lock = tmp_path / "state" / "jcdiag.lock"
    holder = python(HOLD_LOCK, str(lock))
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        second = subprocess.run([sys.executable, "-c", textwrap.dedent(TRY_LOCK), str(lock)], cwd=REPO,
                                capture_output=True, text=True, timeout=30,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
        elapsed = time.monotonic() - started
        assert second.returncode == 1, second.stdout
        assert f"PID {holder.pid}" in second.stderr and str(lock) in second.stderr
        assert "another jcdiag run is in progress" in second.stderr
        assert elapsed < 5, "the second run must not wait for the lock"
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    again = subprocess.run([sys.executable, "-c", textwrap.dedent(TRY_LOCK), str(lock)], cwd=REPO,
                           capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert again.returncode == 0 and again.stdout.strip() == "got it"


@posix_only
def test_a_killed_holder_does_not_block_the_next_run(tmp_path):
    lock = tmp_path / "jcdiag.lock"
    holder = python(HOLD_LOCK, str(lock))
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.communicate(timeout=30)
    assert lock.read_text().strip() == str(holder.pid)        # the stale PID is still in the file
    with single_run_lock(lock) as held:
        assert held == lock and lock.read_text().strip() == str(os.getpid())
    assert lock.read_text() == ""                             # released: no PID left behind


def test_same_process_second_lock_is_refused_too(tmp_path):
    lock = tmp_path / "jcdiag.lock"
    with single_run_lock(lock):
        with pytest.raises(AlreadyRunning) as info:
            with single_run_lock(lock):
                pass
    assert info.value.pid == os.getpid() and info.value.path == lock


@posix_only
def test_lock_refuses_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    link = tmp_path / "jcdiag.lock"
    link.symlink_to(target)
    with pytest.raises(OSError):
        with single_run_lock(link):
            pass
    assert target.read_text() == "precious\n"


def test_the_lock_lives_in_the_state_folder_and_moving_the_spool_does_not_move_it(tmp_path, monkeypatch):
    from collector.automation import default_lock_path
    monkeypatch.delenv("JCDIAG_LOCK_FILE")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(sys, "platform", "linux")
    before = default_lock_path()
    assert before == tmp_path / "xdg" / "jcdiag" / "jcdiag.lock"
    monkeypatch.setenv("JCDIAG_SPOOL", str(tmp_path / "elsewhere" / "spool"))
    assert default_lock_path() == before
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_lock_path() == Path("/var/lib/jcdiag/jcdiag.lock")
    monkeypatch.setenv("JCDIAG_LOCK_FILE", str(tmp_path / "my.lock"))
    assert default_lock_path() == tmp_path / "my.lock"


# --------------------------------------------------------------------------- priority


PRIORITY = """
    import json, os, sys, psutil
    os.nice(int(sys.argv[1]))
    from collector.automation import lower_priority
    done = lower_priority()
    p = psutil.Process()
    io = p.ionice()
    print(json.dumps({"done": done, "nice": p.nice(), "ioclass": int(io.ioclass), "iovalue": io.value}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice and ionice are read back on Linux")
def test_lower_priority_sets_nice_10_and_ionice_best_effort_7():
    import json
    child = python(PRIORITY, "0")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    got = json.loads(out)
    assert got["nice"] == 10
    assert got["ioclass"] == int(psutil.IOPRIO_CLASS_BE) and got["iovalue"] == 7
    assert got["done"] == {"errors": [], "nice": 10, "ionice": "best-effort 7"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice is read back on Linux")
def test_lower_priority_never_raises_priority():
    import json
    child = python(PRIORITY, "15")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert json.loads(out)["nice"] == 15


class FakeProcess:
    """Answers like psutil.Process but refuses every change, as for an unprivileged user."""

    def __init__(self, nice=0, refuse=True):
        self._nice = nice
        self.refuse = refuse
        self.calls = []

    def nice(self, value=None):
        if value is None:
            return self._nice
        self.calls.append(("nice", value))
        if self.refuse:
            raise psutil.AccessDenied(pid=1)
        self._nice = value

    def ionice(self, *args):
        if not args:
            return psutil._common.pionice(psutil.IOPRIO_CLASS_NONE, 0) if hasattr(psutil, "IOPRIO_CLASS_NONE") \
                else None
        self.calls.append(("ionice", args))
        if self.refuse:
            raise psutil.AccessDenied(pid=1)


def test_lower_priority_reports_but_never_fails_when_not_permitted():
    proc = FakeProcess(refuse=True)
    done = lower_priority(proc, family="linux")
    assert ("nice", 10) in proc.calls
    assert done.get("nice") is None and any(e.startswith("nice: AccessDenied") for e in done["errors"])


def test_lower_priority_on_windows_asks_for_below_normal():
    proc = FakeProcess(nice=getattr(psutil, "NORMAL_PRIORITY_CLASS", 32), refuse=False)
    done = lower_priority(proc, family="windows")
    assert ("nice", getattr(psutil, "BELOW_NORMAL_PRIORITY_CLASS", 0x4000)) in proc.calls
    assert done["priority"] == "below-normal"


def test_lower_priority_on_macos_sets_nice_only():
    proc = FakeProcess(refuse=False)
    done = lower_priority(proc, family="macos")
    assert proc.calls == [("nice", 10)] and done == {"errors": [], "nice": 10}


# --------------------------------------------------------------------------- run time


LIMITED = """
    import subprocess, sys, time
    from pathlib import Path
    from collector.automation import RuntimeLimitExceeded, runtime_limit
    from collector.workspace import private_workspace
    mode, base = sys.argv[1], Path(sys.argv[2])
    started = time.monotonic()
    try:
        with runtime_limit(float(sys.argv[3]), grace=float(sys.argv[4])):
            if mode == "workspace":
                with private_workspace(base) as work:
                    (work / "plain.txt").write_text("collected secret")
                    print(work, flush=True)
                    time.sleep(60)
            elif mode == "command":
                print("child", flush=True)
                subprocess.run(["sleep", "60"])
            elif mode == "stubborn":
                print("stubborn", flush=True)
                while True:
                    try:
                        time.sleep(60)
                    except BaseException:
                        pass
            elif mode == "swallow":
                print("swallow", flush=True)
                for _ in range(600):
                    try:
                        time.sleep(0.1)
                    except Exception:
                        pass
            else:
                print("quick", flush=True)
    except RuntimeLimitExceeded as exc:
        print(f"after {time.monotonic() - started:.1f}s: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    print("finished", flush=True)
"""


def run_limited(mode: str, tmp_path: Path, seconds="1", grace="30"):
    child = python(LIMITED, mode, str(tmp_path), seconds, grace)
    child.stdin.close()
    first = child.stdout.readline().strip()
    out, err = child.stdout.read(), child.stderr.read()       # communicate() would drop read-ahead
    child.wait(timeout=60)
    return child, first, out, err


@posix_only
def test_runtime_limit_ends_a_sleeping_run_and_cleans_its_workspace(tmp_path):
    child, work, out, err = run_limited("workspace", tmp_path)
    assert child.returncode == 1, err
    assert "stopped after the maximum run time of 1s (--max-runtime)" in err
    assert float(err.split("after ")[1].split("s:")[0]) < 10
    assert work.startswith(str(tmp_path)) and not Path(work).exists(), "plaintext left behind"
    assert "finished" not in out


@posix_only
def test_runtime_limit_stops_a_running_command_and_its_child(tmp_path):
    child, first, out, err = run_limited("command", tmp_path)
    assert first == "child" and child.returncode == 1, err
    assert "--max-runtime" in err
    sleepers = [p for p in psutil.process_iter(["cmdline", "ppid"]) if p.info["cmdline"] == ["sleep", "60"]
                and p.info["ppid"] == child.pid]
    assert sleepers == []


@posix_only
def test_an_except_exception_in_a_collector_cannot_swallow_the_limit(tmp_path):
    child, first, out, err = run_limited("swallow", tmp_path)
    assert first == "swallow" and child.returncode == 1 and "--max-runtime" in err


@posix_only
def test_a_run_that_ignores_the_stop_is_ended_after_the_grace(tmp_path):
    started = time.monotonic()
    child, first, out, err = run_limited("stubborn", tmp_path, seconds="0.5", grace="1")
    assert first == "stubborn" and child.returncode == 1
    assert "did not stop within 1s and was ended" in err
    assert time.monotonic() - started < 20


def test_a_run_within_its_limit_is_untouched(tmp_path):
    child, first, out, err = run_limited("quick", tmp_path, seconds="30")
    assert child.returncode == 0 and out.strip() == "finished", err


def test_no_limit_and_handler_restored_in_process():
    import signal
    before = signal.getsignal(signal.SIGTERM)
    with runtime_limit(None):
        pass
    with runtime_limit(30):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(RuntimeLimitExceeded, BaseException) and not issubclass(RuntimeLimitExceeded, Exception)
