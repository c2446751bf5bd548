"""Generates a realistic Linux agent host under a folder: jcagent.log with rotations, the
updater and install logs, syslog and auth.log, /opt/jc conf files and policies.

Used by the measurement and benchmark scripts.  Lines look like real lines: agent
lines carry a timestamp, a level, a component and a message with ids, paths and
durations; syslog and auth.log lines are RFC 3164 style with sshd, sudo, systemd
and jcagent entries.  So compression ratios and redaction costs are realistic (not
one repeated line, not random bytes).  Secrets are planted sparsely, as in real
logs, and the agent's identity files (``client.key``...) exist, as on a real host,
so the never-collect rules have work to do.

Deterministic: the same ``seed`` and size give the same bytes (each file has its
own generator, seeded from ``seed`` and the file name).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path
from functools import partial
from typing import Callable, Iterator, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from collector.config import parse_size  # noqa: E402  (the one size syntax of flags and config)

COMPONENTS = ["jcagent", "policy", "usermgmt", "heartbeat", "updater", "mdm", "pwm", "certs", "ldap"]
MESSAGES = [
    "heartbeat sent status=200 duration={ms}ms",
    "policy {policy} applied result=success duration={ms}ms",
    "polling for commands: none pending",
    "user {user} synced uid={uid} groups={n}",
    "fetched configuration etag={etag}",
    "checking for agent update: current=1.182.0 latest=1.182.0",
    "command {uuid} finished exit=0 stdout={n} bytes",
    "connection to agent.jumpcloud.com:443 established in {ms}ms",
    "failed to read /var/lib/jc/state/{state}.json: no such file or directory",
    "retrying request to https://console.jumpcloud.com/api/systems/{system} after 503",
    "certificate check ok, expires in {n} days",
    "sudoers file /etc/sudoers.d/jumpcloud-{user} written",
]
LEVELS = ["INFO"] * 12 + ["DEBUG"] * 5 + ["WARN"] * 2 + ["ERROR"]
QUIET_LEVELS = ["INFO"] * 12 + ["DEBUG"] * 5 + ["WARN"] * 2
#: What a troubled Go agent logs at ERROR: the same few failures over and over, each with
#: fresh request ids, addresses, durations and counters (``--errors``).
ERROR_MESSAGES = [
    'failed to poll server: Post "https://agent.jumpcloud.com/api/v2/systems/{system}/poll": '
    "dial tcp 10.{a}.{b}.{c}:443: i/o timeout",
    "request {uuid} failed: status=503 after {ms}ms (attempt {n})",
    'x509: certificate signed by unknown authority (possibly because of "crypto/rsa: verification '
    'error" while trying to verify candidate authority certificate "JumpCloud")',
    "failed to apply policy {policy}: exit status {n}",
    "command {uuid} failed exit=1 stderr={n} bytes duration={ms}ms",
    "user {user} sync failed: uid {uid} already in use by pid {pid}",
    "could not write /var/lib/jc/state/{state}.json: no space left on device",
    "ldap bind failed for uid={user},ou=Users,o={system},dc=jumpcloud,dc=com: Invalid Credentials",
    "heartbeat failed: context deadline exceeded (Client.Timeout exceeded while awaiting headers) "
    "duration={ms}ms",
    "websocket read error: read tcp 10.{a}.{b}.{c}:{port}->34.{b}.{c}.{a}:443: connection reset by peer",
]
FRAMES = [
    ("jumpcloud.com/agent/pkg/policy.(*Runner).Apply", "pkg/policy/runner.go"),
    ("jumpcloud.com/agent/pkg/usermgmt.(*Syncer).syncUser", "pkg/usermgmt/sync.go"),
    ("jumpcloud.com/agent/pkg/transport.(*Client).Do", "pkg/transport/client.go"),
    ("jumpcloud.com/agent/pkg/commands.(*Executor).run", "pkg/commands/exec.go"),
    ("net/http.(*Client).do", "/usr/local/go/src/net/http/client.go"),
    ("main.(*agent).loop", "cmd/jcagent/main.go"),
]
#: Of the error records: this share carries a goroutine stack trace, this share is a
#: ``panic:`` block (a panic line, a signal line, the stacks); the rest are single lines.
TRACE_SHARE, PANIC_SHARE = 0.04, 0.01
#: Lines a trace or panic adds beyond its one error line, on average (for the error rate).
_EXTRA_LINES = TRACE_SHARE * 10 + PANIC_SHARE * 13
SYSLOG_MESSAGES = [
    "sshd[{pid}]: Accepted publickey for {user} from 10.{a}.{b}.{c} port {port} ssh2: ED25519 SHA256:{b64}",
    "sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)",
    "sshd[{pid}]: Disconnected from user {user} 10.{a}.{b}.{c} port {port}",
    "sudo:  {user} : TTY=pts/{n} ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl status jcagent",
    "systemd[1]: Started Session {n} of User {user}.",
    "systemd[1]: jcagent.service: Consumed {ms}ms CPU time.",
    "jcagent[{pid}]: level=info msg=\"heartbeat ok\" duration={ms}ms",
    "CRON[{pid}]: (root) CMD (test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily ))",
    "kernel: [{n}.{ms}] audit: type=1400 audit({n}.{ms}:{pid}): apparmor=\"STATUS\" operation=\"profile_replace\"",
]
USERS = [f"user{i:03d}" for i in range(40)]
START = datetime(2026, 11, 1)
HOSTNAME = "ws-0142"

# Shares of the requested total: the agent log and its rotations dominate, as in the field.
AGENT_SHARE, SYSLOG_SHARE, AUTH_SHARE = 0.85, 0.10, 0.04


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big"))


class _AgentVocabulary:
    """The variable parts of one host's agent log, as a real host has them: a handful
    of bound policies, this system's id, a few state files, an etag that changes now
    and then; only command ids, durations and counters are fresh on every line."""

    def __init__(self, rng: random.Random):
        self.system_id = f"{rng.getrandbits(96):024x}"
        self.policies = [f"{rng.getrandbits(96):024x}" for _ in range(12)]
        self.state_files = [f"{rng.getrandbits(64):016x}" for _ in range(5)]
        self.etag = f"{rng.getrandbits(64):016x}"

    def fields(self, rng: random.Random) -> dict:
        if rng.random() < 0.002:
            self.etag = f"{rng.getrandbits(64):016x}"
        return dict(ms=rng.randint(1, 3000), uuid=f"{rng.getrandbits(128):032x}", user=rng.choice(USERS),
                    uid=rng.randint(5000, 5039), n=rng.randint(1, 400), etag=self.etag,
                    policy=rng.choice(self.policies), state=rng.choice(self.state_files),
                    system=self.system_id, pid=rng.randint(300, 99999), port=rng.randint(32768, 60999),
                    a=rng.randint(0, 255), b=rng.randint(0, 255), c=rng.randint(1, 254))


def _stack(rng: random.Random, frames: int) -> str:
    """A Go goroutine dump: ``goroutine N [running]:`` then function and file lines."""
    out = [f"goroutine {rng.randint(1, 5000)} [running]:"]
    for _ in range(frames):
        func, path = rng.choice(FRAMES)
        out.append(f"{func}(0xc000{rng.getrandbits(24):06x}, {{0xc000{rng.getrandbits(24):06x}, "
                   f"0x{rng.randint(1, 99):x}}})")
        out.append(f"\t{path if path.startswith('/') else '/build/agent/' + path}:{rng.randint(20, 900)} "
                   f"+0x{rng.getrandbits(12):x}")
    return "\n".join(out)


def _error_record(rng: random.Random, fields: dict) -> tuple[str, str]:
    """(level, message) of one error record; a message may span lines (stack, panic)."""
    msg = rng.choice(ERROR_MESSAGES).format(**fields)
    roll = rng.random()
    if roll < PANIC_SHARE:
        return "ERROR", (f"agent goroutine crashed: {msg}\npanic: runtime error: invalid memory address or "
                         f"nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 "
                         f"addr=0x0 pc=0x{rng.getrandbits(24):x}]\n\n{_stack(rng, 5)}")
    if roll < PANIC_SHARE + TRACE_SHARE:
        return "ERROR", f"{msg}\n{_stack(rng, 4)}\n"[:-1]
    return "ERROR", msg


def agent_lines(rng: random.Random, start: datetime, approx_bytes: int,
                vocabulary: Optional[_AgentVocabulary] = None,
                errors: Optional[float] = None) -> Iterator[bytes]:
    """Encoded jcagent.log lines until about ``approx_bytes`` are produced.

    ``errors`` (0..1): that share of the lines are error lines (a troubled agent's
    mix, see ERROR_MESSAGES, stack traces and ``panic:`` blocks included); None keeps
    the plain mix where one line in 20 is at level ERROR.
    """
    t, produced = start, 0
    vocabulary = vocabulary or _AgentVocabulary(rng)
    # error records among records, so that error lines / all lines comes out at ``errors``
    p_error = None if errors is None else min(1.0, errors / (1 - errors * _EXTRA_LINES))
    while produced < approx_bytes:
        t += timedelta(milliseconds=rng.randint(5, 900))
        fields = vocabulary.fields(rng)
        if p_error is not None and rng.random() < p_error:
            level, msg = _error_record(rng, fields)
        else:
            msg = rng.choice(MESSAGES).format(**fields)
            level = rng.choice(LEVELS if p_error is None else QUIET_LEVELS)
        if rng.random() < 0.0005:
            msg += f" Authorization: Bearer {rng.getrandbits(160):040x}"
        line = f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d} [{level}] " \
               f"{rng.choice(COMPONENTS)}: {msg}\n".encode()
        produced += len(line)
        yield line


def syslog_lines(rng: random.Random, start: datetime, approx_bytes: int) -> Iterator[bytes]:
    """RFC 3164 syslog / auth.log lines until about ``approx_bytes`` are produced.  Each
    user logs in from a few addresses with one key, as people do."""
    t, produced = start, 0
    keys = {u: f"{rng.getrandbits(256):064x}"[:43] for u in USERS}
    addresses = {u: [(rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)) for _ in range(3)]
                 for u in USERS}
    while produced < approx_bytes:
        t += timedelta(milliseconds=rng.randint(50, 4000))
        user = rng.choice(USERS)
        a, b, c = rng.choice(addresses[user])
        msg = rng.choice(SYSLOG_MESSAGES).format(
            pid=rng.randint(300, 99999), user=user, uid=5000 + USERS.index(user), a=a, b=b, c=c,
            port=rng.randint(32768, 60999), n=rng.randint(1, 9999), ms=rng.randint(1, 999),
            b64=keys[user])
        line = f"{t:%b} {t.day:2d} {t:%H:%M:%S} {HOSTNAME} {msg}\n".encode()
        produced += len(line)
        yield line


def write_lines(path: Path, lines: Iterator[bytes]) -> None:
    """Writes generated lines in batches (bounded memory at any size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf: list[bytes] = []
    with open(path, "wb") as fh:
        for line in lines:
            buf.append(line)
            if len(buf) >= 5000:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))


def write_log(path: Path, rng: random.Random, start: datetime, size: int,
              kind: Callable[[random.Random, datetime, int], Iterator[bytes]] = agent_lines) -> None:
    write_lines(path, kind(rng, start, size))


def _agent_dir(root: Path, seed: int) -> None:
    """/opt/jc as the agent leaves it: conf files (with secrets to redact), policies, and
    the identity files that must never be collected."""
    rng = _rng(seed, "opt/jc")
    jc = root / "opt/jc"
    (jc / "policies").mkdir(parents=True, exist_ok=True)
    conf = {
        "agentServerHost": "agent.jumpcloud.com", "agentServerPort": "443",
        "systemKey": "5f3a9c2e1b7d4f6a8c0e2b4d",
        "systemToken": f"{rng.getrandbits(160):040x}",
        "certuuid": f"{rng.getrandbits(64):016x}",
        "clientKey": "/opt/jc/client.key", "clientCrt": "/opt/jc/client.crt", "caCrt": "/opt/jc/ca.crt",
        "userMgmt": {"ldap_domain": "o=5f3a9c2e1b7d4f6a8c0e2b4e,dc=jumpcloud,dc=com",
                     "local_ldap_bind_pwd": f"{rng.getrandbits(96):024x}"},
    }
    (jc / "jcagent.conf").write_text(json.dumps(conf, indent=2))
    (jc / "agentBootstrap.json").write_text(json.dumps(
        {"connectKey": f"jcc_{rng.getrandbits(256):064x}", "provisionedAt": "2025-03-02T10:11:12Z"}))
    (jc / "version.txt").write_text("1.182.0\n")
    (jc / "loglevel.cache").write_text("INFO\n")
    (jc / "managedUsers.json").write_text(json.dumps(
        [{"username": u, "uid": 5000 + i, "sudo": i % 5 == 0} for i, u in enumerate(USERS)], indent=2))
    (jc / "policyConf.json").write_text(json.dumps(
        {"policies": [f"{rng.getrandbits(96):024x}" for _ in range(12)]}, indent=2))
    for i in range(12):
        (jc / "policies" / f"policy-{i:02d}.json").write_text(json.dumps(
            {"id": f"{rng.getrandbits(96):024x}", "name": f"Policy {i}", "template": "linux_lock_screen",
             "values": {"timeout": 300 + i}}, indent=2))
    write_log(jc / "jcagentInstall.log", rng, START - timedelta(days=200), 64 << 10)
    for name in ("client.key", "client.crt", "ca.crt"):
        (jc / name).write_text(f"-----BEGIN {name.upper()}-----\nnot-a-real-key\n-----END {name.upper()}-----\n")


def make_host(root: Path, total_bytes: int, seed: int = 7, rotations: int = 9,
              errors: Optional[float] = None) -> Path:
    """A Linux agent host whose logs add up to about ``total_bytes``: jcagent.log and
    ``rotations`` rotations (85%), syslog (10%), auth.log (4%), the updater log and apt
    history (the rest), plus /opt/jc.  ``errors``: the share of error lines in the
    agent's logs (see :func:`agent_lines`)."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text('NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n'
                                         'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nVERSION_CODENAME=jammy\n')
    logs = root / "var/log"
    per_file = int(total_bytes * AGENT_SHARE) // (rotations + 1)
    host_agent_lines = partial(agent_lines, vocabulary=_AgentVocabulary(_rng(seed, "vocabulary")),
                               errors=errors)
    for i in range(rotations, -1, -1):
        name = "jcagent.log" if i == 0 else f"jcagent.log.{i}"
        write_log(logs / name, _rng(seed, name), START + timedelta(days=rotations - i), per_file,
                  host_agent_lines)
    write_log(logs / "syslog", _rng(seed, "syslog"), START, int(total_bytes * SYSLOG_SHARE), syslog_lines)
    write_log(logs / "auth.log", _rng(seed, "auth.log"), START, int(total_bytes * AUTH_SHARE), syslog_lines)
    rest = max(0, total_bytes - per_file * (rotations + 1) - int(total_bytes * (SYSLOG_SHARE + AUTH_SHARE)))
    write_log(logs / "jcUpdate.log", _rng(seed, "jcUpdate.log"), START, rest // 2, host_agent_lines)
    (logs / "apt").mkdir(parents=True, exist_ok=True)
    (logs / "apt/history.log").write_text("".join(
        f"\nStart-Date: 2026-10-{d:02d}  06:25:01\nCommandline: /usr/bin/unattended-upgrade\n"
        f"Upgrade: openssl:amd64 (3.0.2-0ubuntu1.{d}, 3.0.2-0ubuntu1.{d + 1})\n"
        f"End-Date: 2026-10-{d:02d}  06:25:09\n" for d in range(1, 29)))
    _agent_dir(root, seed)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root", type=Path)
    ap.add_argument("--size", default="500M", type=parse_size, help="total log size (e.g. 50M, 500M, 2G)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--errors", type=float, help="percent of agent log lines that are errors (e.g. 35)")
    args = ap.parse_args()
    size = args.size
    make_host(args.root, size, seed=args.seed, errors=None if args.errors is None else args.errors / 100)
    print(f"wrote about {size} bytes of logs under {args.root}")


if __name__ == "__main__":
    main()
