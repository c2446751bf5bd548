"""The admin's issue report (report.json), in the terms support asks for it.

Support asks for a detailed description, the troubleshooting steps taken, when the
issue was noticed, error messages and screenshots (attachments), the JumpCloud
resources involved, and a severity as support defines it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

SEVERITIES = {
    1: "Entire loss of functionality; the majority of users impacted",
    2: "Major loss of functionality; high user impact",
    3: "Partial, non-critical loss of functionality; low user impact",
}


@dataclass
class IssueReport:
    description: str = ""
    steps_taken: str = ""
    noticed_at: str = ""                 # ISO date/time, local
    severity: Optional[int] = None
    resources: list[str] = field(default_factory=list)   # users, systems, groups, apps
    attachments: list[str] = field(default_factory=list)  # names inside attachments/

    def __post_init__(self) -> None:
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"severity must be 1, 2 or 3, not {self.severity!r}")

    @property
    def empty(self) -> bool:
        return not (self.description or self.steps_taken or self.noticed_at or self.severity
                    or self.resources or self.attachments)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["severity_meaning"] = SEVERITIES.get(self.severity) if self.severity else None
        return d
