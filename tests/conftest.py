import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest


@pytest.fixture(autouse=True)
def private_spool(tmp_path, monkeypatch):
    """Every test gets its own spool (and so its own run lock beside it): tests never touch
    /var/lib/jcdiag, and two test runs on one machine never contend for the lock."""
    monkeypatch.setenv("JCDIAG_SPOOL", str(tmp_path / "jcdiag-state" / "spool"))
