"""Data shipped inside the package (rules, lifecycle table) and the one way to read it."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional


def read_data(name: str, path: Optional[Path | str] = None) -> tuple[str, str]:
    """(text, where) of ``path``, or of the shipped ``collector/data/<name>`` when None;
    ``where`` names the file in error messages."""
    if path is None:
        return (resources.files("collector.data").joinpath(name).read_text("utf-8"),
                f"collector/data/{name}")
    return Path(path).read_text("utf-8"), str(path)
