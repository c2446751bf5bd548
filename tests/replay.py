"""Replays recorded command outputs, standing in for commands that cannot run here.

A fixture directory holds ``commands.json``: a list of
``{"argv": [...], "returncode": 0, "stdout": "file.txt", "stderr": "file.txt"}``
whose files sit beside it.  A command not in the list answers "command not found",
as it would on a machine that lacks it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from platforms.base import CommandResult


class ReplayRunner:
    live = True

    def __init__(self, recordings: dict[tuple[str, ...], CommandResult]):
        self.recordings = recordings
        self.calls: list[tuple[str, ...]] = []

    @classmethod
    def from_dir(cls, directory: Path | str) -> "ReplayRunner":
        directory = Path(directory)
        recordings = {}
        for entry in json.loads((directory / "commands.json").read_text()):
            argv = tuple(entry["argv"])
            out = (directory / entry["stdout"]).read_bytes() if entry.get("stdout") else b""
            err = (directory / entry["stderr"]).read_bytes() if entry.get("stderr") else b""
            recordings[argv] = CommandResult(argv, entry.get("returncode", 0), out, err)
        return cls(recordings)

    def __call__(self, argv: Sequence[str], timeout: float = 30.0) -> CommandResult:
        argv = tuple(argv)
        self.calls.append(argv)
        if argv in self.recordings:
            return self.recordings[argv]
        return CommandResult(argv, None, error=f"{argv[0]}: command not found")
