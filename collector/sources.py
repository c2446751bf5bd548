"""What can be collected, declared as data (sos's ``add_copy_spec`` / ``add_cmd_output``).

Platforms build these; ``collector.gather`` alone performs the I/O, so the
safety rules (no symlinks out, regular files only, caps, deadlines, never-collect)
are enforced in one place whatever a platform declares.  Nothing here reads a
file or runs a command.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class FileSource:
    """Files of the examined system to copy into the bundle.

    ``path`` is an absolute *system* path (``/var/log/jcagent.log``,
    ``C:\\Windows\\Temp\\jcagent.log``); its last component may be a glob
    (``jcagent.log.*``).  ``recursive`` copies a whole directory tree.  ``dest`` is the
    folder inside the bundle.  ``timestamped`` lets ``--since`` trim the file;
    ``redact`` names a structured redactor for config files (``"json"``).

    Per-user sources name the examined system's ``user`` (hostile text: ``gather``
    turns it into one safe folder name where ``dest`` says ``{user}``) and the folder
    they must stay ``within`` (the user's home): a source folder that resolves outside
    it is refused, and on a live system everything read there must belong to the
    owner of ``within`` (or root).
    """

    path: str
    dest: str
    collector: str
    kind: str = "log"                 # log | config | system
    recursive: bool = False
    timestamped: bool = True
    redact: Optional[str] = None
    required: bool = False            # missing is an error (else: recorded as absent)
    user: Optional[str] = None        # examined user name or profile folder, for {user} in dest
    within: Optional[str] = None      # system path the source may not leave (a user's home)


@dataclass(frozen=True)
class CommandSource:
    """A command whose output goes into ``commands/<dest>`` with a deadline."""

    argv: tuple[str, ...]
    dest: str
    collector: str
    timeout: float = 30.0


@dataclass(frozen=True)
class GeneratedSource:
    """A JSON document computed at run time (psutil snapshot, OS facts)."""

    dest: str
    collector: str
    produce: Callable[[], Any] = field(compare=False)


Source = FileSource | CommandSource | GeneratedSource
