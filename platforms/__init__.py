"""One module per OS behind one interface (psutil-style): pick one with :func:`get_platform`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .base import CommandRunner, Platform, ProcessLister

FAMILIES = ("linux", "macos", "windows")


def current_family() -> str:
    """The family of the OS this process runs on."""
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


def get_platform(family: Optional[str] = None, root: Path | str | None = None,
                 runner: Optional[CommandRunner] = None,
                 processes: Optional[ProcessLister] = None,
                 registry=None) -> Platform:
    """The platform for ``family`` (default: this OS) reading under ``root``.

    Imports only the module asked for, so start-up stays cheap.
    """
    family = family or current_family()
    if family not in FAMILIES:
        raise ValueError(f"unknown platform {family!r}: choose one of {', '.join(FAMILIES)}")
    if root is None:
        root = "C:\\" if family == "windows" and current_family() == "windows" else "/"
    if family == "linux":
        from .linux import Linux
        return Linux(root, runner=runner, processes=processes)
    if family == "macos":
        from .macos import MacOS
        return MacOS(root, runner=runner, processes=processes)
    from .windows import Windows
    return Windows(root, runner=runner, processes=processes, registry=registry)
