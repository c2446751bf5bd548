"""A minimal Platform for exercising the gather engine on hand-made trees."""
from __future__ import annotations

from platforms.base import AgentInfo, OSInfo, PatchLevel, Platform


class TreePlatform(Platform):
    """Declares exactly the sources a test gives it; facts are empty."""

    family = "linux"

    def __init__(self, root, sources=(), never=(), runner=None, family="linux", live=False):
        super().__init__(root, runner=runner, live=live)
        self._sources = list(sources)
        self._never = list(never)
        self.family = family

    def os_info(self) -> OSInfo:
        return OSInfo(family=self.family, name="Test OS")

    def patch_level(self) -> PatchLevel:
        return PatchLevel()

    def agent_info(self) -> AgentInfo:
        return AgentInfo(installed=True)

    def sources(self) -> list:
        return self._sources

    def never_collect(self) -> list[str]:
        return self._never
