"""Builds agent hosts (a Linux, macOS or Windows file layout) under a directory, for tests.

Every agent file of agent-footprint.md that matters to a test is planted, with
secrets in the places real agents keep them, and the never-collect files with a
marker that must never appear in a bundle.
"""
from __future__ import annotations

import json
import plistlib
from pathlib import Path

KEY_MARKER = "NEVER-COLLECT-KEY-MATERIAL"
SYSTEM_TOKEN = "7d1b5e3f9a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b"
LDAP_PWD = "Ld@pBindPassw0rd!2026"
CONNECT_KEY = "jcc_eyJwdWJsaWNLaWNrc3RhcnRVcmwiOiJodHRwczovL2tpY2tzdGFydC5qdW1wY2xvdWQuY29tIn0K"
SECRETS = (SYSTEM_TOKEN, LDAP_PWD, CONNECT_KEY)

UBUNTU_2204 = """PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"""


def _w(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def agent_conf(key_dir: str) -> str:
    return json.dumps({
        "systemKey": "5f3a9c2e1b7d4f6a8c0e2b4d",
        "systemToken": SYSTEM_TOKEN,
        "clientKey": f"{key_dir}client.key",
        "clientCrt": f"{key_dir}client.crt",
        "caCrt": f"{key_dir}ca.crt",
        "certuuid": "c0ffee00-1234-5678-9abc-def012345678",
        "userMgmt": {"local_ldap_bind_pwd": LDAP_PWD,
                     "ldap_domain": "o=5f3a9c2e1b7d4f6a8c0e2b4d,dc=jumpcloud,dc=com"},
    }, indent=2)


def agent_log(lines: int = 200) -> str:
    out = []
    for i in range(lines):
        level = "ERROR" if i % 17 == 0 else "INFO"
        out.append(f"2026-11-20 10:{i // 60 % 60:02d}:{i % 60:02d} [{level}] jcagent: heartbeat {i} ok\n")
    out.append(f"2026-11-20 11:00:00 [DEBUG] install args: -k {CONNECT_KEY}\n")
    return "".join(out)


def linux_host(root: Path) -> Path:
    _w(root / "etc/os-release", UBUNTU_2204)
    _w(root / "etc/hostname", "web-01\n")
    _w(root / "var/log/jcagent.log", agent_log())
    _w(root / "var/log/jcagent.log.1", agent_log(50))
    _w(root / "var/log/jcUpdate.log", "2026-11-19 02:00:00 update check ok\n")
    _w(root / "opt/jc/jcagent.conf", agent_conf("/opt/jc/"))
    _w(root / "opt/jc/agentBootstrap.json", json.dumps({"connectKey": CONNECT_KEY}))
    _w(root / "opt/jc/version.txt", "1.182.0\n")
    _w(root / "opt/jc/policies/p1/policy.json", "{}\n")
    for name in ("client.key", "client.crt", "ca.crt", "policies/p1/nested.key"):
        _w(root / "opt/jc" / name, KEY_MARKER + "\n")
    return root


def macos_host(root: Path) -> Path:
    _w(root / "System/Library/CoreServices/SystemVersion.plist", plistlib.dumps({
        "ProductBuildVersion": "23E224", "ProductCopyright": "1983-2024 Apple Inc.",
        "ProductName": "macOS", "ProductUserVisibleVersion": "14.4.1", "ProductVersion": "14.4.1",
        "iOSSupportVersion": "17.4"}))
    _w(root / "var/log/jcagent.log", agent_log())
    _w(root / "opt/jc/jcagent.conf", agent_conf("/opt/jc/"))
    _w(root / "opt/jc/agentBootstrap.json", json.dumps({"connectKey": CONNECT_KEY}))
    _w(root / "opt/jc/version.txt", "1.182.0\n")
    _w(root / "Users/alice/Library/Logs/JumpCloud/jc-user-agent.log", "2026-11-20 10:00:00 user agent up\n")
    for name in ("opt/jc/client.key", "opt/jc/client.crt", "opt/jc/ca.crt", "opt/jc/policies/deep/x.key",
                 "var/run/JumpCloud-SecureToken-Creds.txt",
                 "Users/alice/Library/Keychains/jumpcloud-device-trust-keychain-db"):
        _w(root / name, KEY_MARKER + "\n")
    return root


def windows_host(root: Path) -> Path:
    contrib = root / "Program Files/JumpCloud/Plugins/Contrib"
    _w(root / "Windows/Temp/jcagent.log", agent_log())
    _w(root / "Windows/Temp/jcagent.log.prev", agent_log(20))
    _w(root / "Windows/Temp/jcUpdate.log",
       f'MSI (s) (A4:B8) [10:22:33:123]: Command Line: JCINSTALLERARGUMENTS="-k {CONNECT_KEY}"\n')
    _w(contrib / "jcagent.conf", agent_conf("C:\\\\Program Files\\\\JumpCloud\\\\Plugins\\\\Contrib\\\\"))
    _w(contrib / "version.txt", "1.182.0\n")
    _w(root / "Program Files/JumpCloud/AD Sync/adsync.log", "2026-11-20 10:00:00 sync ok\n")
    _w(root / "Program Files/JumpCloud/JumpCloud AD Sync/JumpCloud_AD_Sync.log", "2026-11-20 10:00:00 sync2\n")
    _w(root / "Windows/Temp/JumpCloud_AD_Integration.log", "2026-11-20 10:00:00 import ok\n")
    for name in ("client.key", "client.crt", "ca.crt", "Nested/deep.key"):
        _w(contrib / name, KEY_MARKER + "\n")
    _w(root / "ProgramData/JumpCloud/Tray/alice/tray.log", "2026-11-20 10:00:00 tray up\n")
    _w(root / "ProgramData/JumpCloud/Tray/alice/cache/identity.key", KEY_MARKER + "\n")
    return root


HOSTS = {"linux": linux_host, "macos": macos_host, "windows": windows_host}
