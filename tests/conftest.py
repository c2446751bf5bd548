import sys
from pathlib import Path

# Tests plant folder chains 1,100 deep (hostile trees); Python 3.11's shutil.rmtree, which
# pytest uses to clean its temporary folders, recurses once per level.  jcdiag itself never
# recurses over an examined tree: this only keeps the test runner's own clean-up alive.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import os
import shutil
import tempfile

import pytest

_SESSION_STATE = tempfile.mkdtemp(prefix="jcdiag-test-state-")


def pytest_configure(config):
    # Module- and session-scoped fixtures run before the per-test one below: they get a
    # spool (and run lock) of this test session, never the machine's /var/lib/jcdiag.
    os.environ["JCDIAG_SPOOL"] = os.path.join(_SESSION_STATE, "spool")
    os.environ["JCDIAG_LOCK_FILE"] = os.path.join(_SESSION_STATE, "jcdiag.lock")
    os.environ["JCDIAG_LIFECYCLE_FILE"] = os.path.join(_SESSION_STATE, "lifecycle.json")


def pytest_unconfigure(config):
    shutil.rmtree(_SESSION_STATE, ignore_errors=True)


@pytest.fixture(autouse=True)
def private_spool(tmp_path, monkeypatch):
    """Every test gets its own spool, run lock and stored lifecycle table: tests never touch /var/lib/jcdiag,
    and two test runs on one machine never contend for the lock."""
    monkeypatch.setenv("JCDIAG_SPOOL", str(tmp_path / "jcdiag-state" / "spool"))
    monkeypatch.setenv("JCDIAG_LOCK_FILE", str(tmp_path / "jcdiag-state" / "jcdiag.lock"))
    monkeypatch.setenv("JCDIAG_LIFECYCLE_FILE", str(tmp_path / "jcdiag-state" / "lifecycle.json"))
