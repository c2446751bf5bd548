"""Generates a realistic agent host under a folder: jcagent.log with rotations, AD logs, conf files.

Used by the measurement and benchmark scripts.  Lines look like agent lines: a
timestamp, a level, a component and a message with ids, paths and durations, so
compression ratios and redaction costs are realistic (not one repeated line, not
random bytes).  Secrets are planted sparsely, as in real logs.
"""
from __future__ import annotations

import argparse
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

COMPONENTS = ["jcagent", "policy", "usermgmt", "heartbeat", "updater", "mdm", "pwm", "certs", "ldap"]
MESSAGES = [
    "heartbeat sent status=200 duration={ms}ms",
    "policy {uuid} applied result=success duration={ms}ms",
    "polling for commands: none pending",
    "user {user} synced uid={uid} groups={n}",
    "fetched configuration etag={hex}",
    "checking for agent update: current=1.182.0 latest=1.182.0",
    "command {uuid} finished exit=0 stdout={n} bytes",
    "connection to agent.jumpcloud.com:443 established in {ms}ms",
    "failed to read /var/lib/jc/state/{hex}.json: no such file or directory",
    "retrying request to https://console.jumpcloud.com/api/systems/{hex} after 503",
    "certificate check ok, expires in {n} days",
    "sudoers file /etc/sudoers.d/jumpcloud-{user} written",
]
LEVELS = ["INFO"] * 12 + ["DEBUG"] * 5 + ["WARN"] * 2 + ["ERROR"]


def agent_lines(rng: random.Random, start: datetime, approx_bytes: int):
    """Yields encoded log lines until about ``approx_bytes`` are produced."""
    t, produced = start, 0
    users = [f"user{i:03d}" for i in range(40)]
    while produced < approx_bytes:
        t += timedelta(milliseconds=rng.randint(5, 900))
        msg = rng.choice(MESSAGES).format(
            ms=rng.randint(1, 3000), uuid=f"{rng.getrandbits(128):032x}", user=rng.choice(users),
            uid=rng.randint(5000, 9000), n=rng.randint(1, 400), hex=f"{rng.getrandbits(64):016x}")
        if rng.random() < 0.0005:
            msg += f" Authorization: Bearer {rng.getrandbits(160):040x}"
        line = f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d} [{rng.choice(LEVELS)}] " \
               f"{rng.choice(COMPONENTS)}: {msg}\n".encode()
        produced += len(line)
        yield line


def write_log(path: Path, rng: random.Random, start: datetime, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = []
    with open(path, "wb") as fh:
        for line in agent_lines(rng, start, size):
            buf.append(line)
            if len(buf) >= 5000:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))


def make_host(root: Path, total_bytes: int, seed: int = 7, rotations: int = 9) -> Path:
    """A Linux agent host whose agent logs add up to about ``total_bytes``."""
    rng = random.Random(seed)
    per_file = total_bytes // (rotations + 1)
    start = datetime(2026, 11, 1)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text('NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n'
                                         'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nVERSION_CODENAME=jammy\n')
    for i in range(rotations, -1, -1):
        name = "jcagent.log" if i == 0 else f"jcagent.log.{i}"
        write_log(root / "var/log" / name, rng, start + timedelta(days=rotations - i), per_file)
    jc = root / "opt/jc"
    jc.mkdir(parents=True, exist_ok=True)
    (jc / "jcagent.conf").write_text(json.dumps({"systemKey": "5f3a9c2e1b7d4f6a8c0e2b4d",
                                                 "systemToken": "0123456789abcdef0123456789abcdef01234567"}))
    (jc / "version.txt").write_text("1.182.0\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root", type=Path)
    ap.add_argument("--size", default="500M", help="total agent log size (e.g. 50M, 500M, 2G)")
    args = ap.parse_args()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    size = int(float(args.size[:-1]) * units[args.size[-1].upper()]) if args.size[-1].isalpha() else int(args.size)
    make_host(args.root, size)
    print(f"wrote about {size} bytes of agent logs under {args.root}")


if __name__ == "__main__":
    main()
