"""The JumpCloud agent's files that Linux and macOS share (agent-footprint.md, "Linux and macOS").

Both OSes keep the agent in ``/opt/jc`` and log to ``/var/log/jc*``; each platform
module adds its own extras (Linux's install log, macOS's loginwindow logs and
launchd plists) to these common declarations.
"""
from __future__ import annotations

from typing import Any

from collector.sources import FileSource

AGENT_DIR = "/opt/jc"
AGENT_CONF = f"{AGENT_DIR}/jcagent.conf"
AGENT_VERSION_FILE = f"{AGENT_DIR}/version.txt"
AGENT_CONF_IDENTITY_KEYS = ("clientKey", "clientCrt", "caCrt")
LOGS = "logs/agent"
CONF = "config/agent"


def config_source(path: str, **kw: Any) -> FileSource:
    """An agent config file: not a timestamped log, so --since leaves it whole."""
    return FileSource(path, CONF, "agent-config", kind="config", timestamped=False, **kw)


def agent_log_sources(*extra: FileSource) -> list[FileSource]:
    """jcagent.log and its rotations, the updater log, every other /var/log/jc*, /var/log/jumpcloud/.

    The named logs are declared beside the ``jc*`` glob so that a missing one is
    recorded as absent; gather records each real file once.
    """
    return [
        FileSource("/var/log/jcagent.log", LOGS, "agent-logs"),
        FileSource("/var/log/jcagent.log.*", LOGS, "agent-logs"),
        FileSource("/var/log/jcUpdate.log", LOGS, "agent-logs"),
        FileSource("/var/log/jc*", LOGS, "agent-logs"),
        FileSource("/var/log/jumpcloud", f"{LOGS}/jumpcloud", "agent-logs", recursive=True),
        *extra,
    ]


def agent_config_sources(*extra: FileSource) -> list[FileSource]:
    """/opt/jc configuration (secrets redacted by key), policies and the proxy config."""
    return [
        config_source(AGENT_CONF, redact="json"),
        config_source(f"{AGENT_DIR}/agentBootstrap.json", redact="json"),
        config_source(AGENT_VERSION_FILE),
        config_source(f"{AGENT_DIR}/managedUsers.json"),
        config_source(f"{AGENT_DIR}/policyConf.json"),
        config_source(f"{AGENT_DIR}/packageUpgradeBackup.json"),
        config_source(f"{AGENT_DIR}/loglevel.cache"),
        FileSource(f"{AGENT_DIR}/policies", f"{CONF}/policies", "agent-config", kind="config",
                   recursive=True, timestamped=False),
        config_source("/etc/jcagent-proxy.conf"),
        *extra,
    ]
