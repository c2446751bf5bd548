"""Health findings: log statistics, agent states, certificate expiry, clock skew, disk space."""
from __future__ import annotations

import json
import os
import random
import threading
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hypothesis import given, settings, strategies as st

from collector import health
from collector.health import Finding, LogStats, findings, is_error_line, jcagent_conf, normalize, normalize_whole
from platforms.base import AgentInfo, ProcessInfo
from platforms.linux import Linux
from platforms.macos import MacOS
from platforms.windows import Windows

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_LOG = FIXTURES / "health" / "jcagent.log"
NOW = datetime(2024, 3, 4, 12, 0, 0)
WIN_CONTRIB = Path("Program Files/JumpCloud/Plugins/Contrib")
REAL_VOLUME_FREE = health.volume_free


def ids(found: list[Finding]) -> list[str]:
    return [f.id for f in found]


def by_id(found: list[Finding], finding_id: str) -> Finding:
    return next(f for f in found if f.id == finding_id)


@pytest.fixture(autouse=True)
def roomy_disks(monkeypatch):
    """Live-platform tests must not depend on this machine's free space."""
    monkeypatch.setattr(health, "volume_free", lambda path: (hash(path), 100 << 30))


# --------------------------------------------------------------------------- LogStats


def stats_of(*blobs: bytes, chunker=None) -> LogStats:
    stats = LogStats(now=NOW)
    for blob in blobs:
        for chunk in (chunker(blob) if chunker else [blob]):
            stats.feed(chunk)
        stats.close()
    return stats


def snapshot(stats: LogStats) -> tuple:
    return (stats.lines, stats.error_lines, stats.last_timestamp, stats.newest_error, stats.top_errors())


def random_chunks(rng: random.Random):
    def chunker(blob: bytes) -> list[bytes]:
        out, i = [], 0
        while i < len(blob):
            step = rng.choice([1, 2, 3, 7, 64, 4096, 20000])
            out.append(blob[i:i + step])
            i += step
        return out
    return chunker


def generated_log(rng: random.Random, lines: int = 3000) -> bytes:
    start = datetime(2024, 3, 1)
    shapes = [
        "{t} [{pid}] [INFO] heartbeat sent in {ms}ms",
        "{t} [{pid}] [ERROR] failed to poll server: Get https://agent.jumpcloud.com:443/poll/{hexid}: EOF",
        "{t} [{pid}] [ERROR] dial tcp 10.1.{a}.{b}:443: i/o timeout after {ms}ms",
        'time="{iso}" level=error msg="policy {n} failed" policy="{word}"',
        "{t} [{pid}] [WARN] error budget at {n}%",
        "    at continuation line {n}",
        "{t} [{pid}] [ERROR] " + "x" * 9000,           # longer than MAX_LINE
    ]
    out = []
    for i in range(lines):
        when = start + timedelta(seconds=37 * i)
        line = rng.choice(shapes).format(
            t=when.strftime("%Y/%m/%d %H:%M:%S"), iso=when.strftime("%Y-%m-%dT%H:%M:%S"),
            pid=rng.randint(100, 9999), ms=rng.randint(1, 900), hexid="%024x" % rng.getrandbits(96),
            a=rng.randint(0, 255), b=rng.randint(0, 255), n=rng.randint(0, 99),
            word=rng.choice(["alpha", "beta"]))
        out.append(line + ("\r\n" if i % 5 == 0 else "\n"))
    return "".join(out).encode() + b"2024/03/05 00:00:00 [1] [FATAL] no newline at the end"


def test_random_chunkings_give_the_same_result_as_one_chunk():
    rng = random.Random(20240304)
    first, second = generated_log(rng), generated_log(rng, lines=500)
    expected = snapshot(stats_of(first, second))
    assert expected[1] > 100 and expected[4]
    for seed in range(8):
        assert snapshot(stats_of(first, second, chunker=random_chunks(random.Random(seed)))) == expected


def reference_timeline(*blobs: bytes) -> tuple[int, dict]:
    """Errors per bucket per key, by the module's rules applied line by line (no memo, no
    blocks): an unstamped line takes the time of the last stamped line of its file; the
    bucket is the smallest rung of the ladder that puts the whole log (files in time order)
    in 96 buckets."""
    from collections import Counter
    from collector.logtime import line_timestamp
    from collector.timeline import hour_index, next_width

    errors, stamped = [], []
    for blob in blobs:
        record = None
        for raw in blob.split(b"\n"):
            raw = raw[:health.MAX_LINE]
            stamp = line_timestamp(raw, NOW.year)
            record = stamp or record
            if stamp:
                stamped.append(hour_index(stamp))
            text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            message = health._STAMP.sub("", text, count=1) if stamp else text.lstrip()
            if record is not None and is_error_line(message):
                errors.append((normalize(message), hour_index(record)))
    width = 1
    while max(stamped) // width - min(stamped) // width >= 96:
        width = next_width(width)
    series: dict = {}
    for key, hour in errors:
        start = datetime(1970, 1, 1) + timedelta(hours=hour // width * width)
        series.setdefault(key, Counter())[start.isoformat(timespec="minutes")] += 1
    window = [(datetime(1970, 1, 1) + timedelta(hours=h // width * width)).isoformat(timespec="minutes")
              for h in (min(stamped), max(stamped) + width)]
    return width, window, {key: dict(c) for key, c in series.items()}


def test_timeline_of_top_errors_matches_a_line_by_line_reference():
    rng = random.Random(17)
    first, second = generated_log(rng), generated_log(rng, lines=500)
    width, window, expected = reference_timeline(first, second)
    for seed in range(3):
        summary = stats_of(second, first, chunker=random_chunks(random.Random(seed))).to_summary()
        timeline = summary["timeline"]
        assert [timeline["start"], timeline["end"]] == window
        assert timeline["bucket_hours"] == width > 1 and len(timeline["series"]) == len(summary["top_errors"]) > 2
        for top in summary["top_errors"]:
            assert timeline["series"][top["message"]] == expected[top["message"]]
            assert sum(expected[top["message"]].values()) == top["count"]


def test_the_timeline_spans_the_whole_log_not_only_its_errors():
    log = "".join(f"2024-03-01 {h:02d}:10:00 [INFO] ok\n" + ("2024-03-01 05:30:00 [ERROR] boom\n" if h == 5 else "")
                  for h in range(0, 11)).encode()
    older = b"2024-02-29 23:59:00 [INFO] rotated\n2024-03-01 00:00:01 [INFO] rotated\n"
    timeline = stats_of(log, older).to_summary()["timeline"]
    assert (timeline["start"], timeline["end"]) == ("2024-02-29T23:00", "2024-03-01T11:00")
    assert timeline["series"] == {"[ERROR] boom": {"2024-03-01T05:00": 1}}


def test_sample_log_groups_variable_parts_and_keeps_first_and_last_seen():
    stats = stats_of(SAMPLE_LOG.read_bytes())
    top = stats.top_errors()
    assert stats.lines == 14
    assert stats.error_lines == 7                     # 6 [ERROR] lines and the panic, not "[INFO] no error"
    assert [e["count"] for e in top] == [2, 2, 2, 1]
    poll = next(e for e in top if "EOF" in e["message"])
    assert poll["message"] == "[<N>] [ERROR] failed to poll server: Get https://agent.jumpcloud.com:<N>/poll/<HEX>: EOF"
    assert poll["first_seen"] == "2024-03-04T08:01:05" and poll["last_seen"] == "2024-03-04T08:02:07"
    assert poll["example"].startswith("2024/03/04 08:01:05 [932] [ERROR] failed to poll server")
    timeout = next(e for e in top if "timeout" in e["message"])
    assert "dial tcp <IP>: i/o timeout" in timeout["message"]
    command = next(e for e in top if "command" in e["message"])
    assert command["message"] == "[<N>] [ERROR] command <UUID> failed after <DUR>: exit status <N>"
    panic = next(e for e in top if e["message"].startswith("panic:"))
    assert panic["last_seen"] == "2024-03-04T08:07:17"  # the record above it
    assert stats.last_timestamp == datetime(2024, 3, 4, 8, 9, 21)


def test_rotations_fed_out_of_order_keep_min_and_max():
    newer = b"2024/03/04 10:00:00 [1] [ERROR] sync failed for 3 users\n"
    older = b"2024/03/01 10:00:00 [1] [ERROR] sync failed for 7 users\n"
    top = stats_of(newer, older).top_errors()
    assert top == [{"message": "[<N>] [ERROR] sync failed for <N> users", "count": 2,
                    "first_seen": "2024-03-01T10:00:00", "last_seen": "2024-03-04T10:00:00",
                    "example": newer.decode().strip()}]


def test_a_file_without_timestamps_does_not_inherit_the_previous_files_time():
    stats = stats_of(b"2024/03/04 10:00:00 [1] [INFO] ok\n", b"ERROR: something broke\n")
    assert stats.top_errors()[0]["first_seen"] is None


@pytest.mark.parametrize("line, is_error", [
    ("[932] [ERROR] failed to poll server", True),
    ("ERROR: x", True),
    ("[jumpcloud-agent] FATAL cannot start", True),
    ("host jumpcloud-agent[12]: CRITICAL disk", True),
    ('level=error msg="x"', True),
    ('level="fatal" msg="x"', True),
    ('{"level":"error","msg":"x","time":"2024-03-04T10:00:00Z"}', True),
    ("panic: runtime error: index out of range", True),
    ("[932] [INFO] no error while reading policies", False),
    ("[932] [WARN] error budget low", False),
    ('level=info msg="error count 0"', False),
    ('{"level":"info","msg":"error"}', False),
    ("the operation reported an error", False),
    ("[INFO] cannot set log level=error", False),
])
def test_error_rule(line, is_error):
    assert is_error_line(line) is is_error


@pytest.mark.parametrize("a, b", [
    ("sync failed for user 12 in 3.5s", "sync failed for user 947 in 120ms"),
    ("request to 192.168.1.20:8443 failed", "request to 10.0.0.1 failed"),
    ("peer fe80::1ff:fe23:4567:890a refused", "peer 2001:db8::1 refused"),
    ('open "C:\\Users\\ann\\x.json" failed', "open 'C:\\Users\\bob\\y.json' failed"),
    ("id 0b1e2c3d-1111-4222-8333-444455556666 gone", "id 9F8E7D6C-AAAA-4BBB-8CCC-DDDDEEEEFFFF gone"),
    ("object 5defcc8c0582237f4253da6e missing", "object 65f0a1b2c3d4e5f601234567 missing"),
    ('level=error msg="poll failed" error="dial tcp: timeout"', 'level=error msg="poll failed" error="EOF"'),
])
def test_variable_parts_group_together(a, b):
    assert normalize(a) == normalize(b)


@pytest.mark.parametrize("message", [
    "sync failed for user 12 in 3.5s after 1h30m",
    "request to 192.168.1.20:8443 failed, 999.1.2.3 is no address",
    "peer fe80::1ff:fe23:4567:890a refused; abc1 deadbeef12 0x7f 0x7fffffff v2.10.3",
    'level=error msg="poll 42 failed for \'x9\'" error="dial tcp 10.0.0.1:443"',
    "id 0b1e2c3d-1111-4222-8333-444455556666 user007 ٣ apples 5defcc8c0582237f4253da6e",
    "0" * 2000 + " long line 12345",
])
def test_digit_shape_memo_is_exact(message):
    """LogStats memoizes normalize() on the message with every digit made 0: that must
    never change a key, or errors would group wrongly."""
    digits_to_zero = str.maketrans("123456789", "000000000")
    assert normalize(message.translate(digits_to_zero)) == normalize(message)
    stats = LogStats(now=NOW)
    for line, stamped in ((f"[ERROR] {message}", False), (f"2024-03-04 10:00:00 ERROR {message}", True)):
        expected = normalize(line.split(" ", 2)[-1] if stamped else line)
        assert stats._error_key(line.encode(), stamped) == expected
        assert stats._error_key(line.translate(digits_to_zero).encode(), stamped) == expected   # memo
    assert stats._error_key(f"[INFO] {message}".encode(), False) is None
    assert stats._error_key(f"[INFO] {message}".replace("1", "7").encode(), False) is None


def test_digit_shape_memo_is_exact_on_bytes_that_are_not_utf8():
    stats = LogStats(now=NOW)
    for raw in (b"[ERROR] bad \xff1 byte \xc3 22 \xe2\x82 7ms", b"[ERROR] bad \xff9 byte \xc3 48 \xe2\x82 3ms"):
        assert stats._error_key(raw, False) == normalize(raw.decode("utf-8", errors="replace"))


_HEX = "0123456789abcdefABCDEF"
_TOKENS = st.one_of(
    st.text(alphabet=_HEX, min_size=1, max_size=40),
    st.text(alphabet=_HEX, min_size=1, max_size=12).map(lambda h: "0x" + h),
    st.sampled_from(["0b1e2c3d-1111-4222-8333-444455556666", "DEADBEEF-aaaa-4bbb-8ccc-0123456789ab",
                     "0b1e2c3d-1111-4222-8333-a44455556666",
                     "10.0.0.1", "192.168.1.20:8443", "fe80::1ff:fe23:4567:890a", "::1", "12ms", "1.5s",
                     "3h2m", "250µs", "12.5", "42", "ERROR", "error", "[ERROR]", "level=error", "level=info",
                     'msg="', "failed", "Dec", "user007", "é", "ß", "Ωmega", "_", "x", "<FF>", "+", ",", "-",
                     "+0200abcd", ",0123abcd", "-1234beef", "level=abcdef12", "level=", "=", "\r"]),
    st.text(alphabet="abcdefxXyz0123456789", min_size=1, max_size=10))
_SEPARATORS = st.sampled_from(["", " ", " ", ".", ":", "-", "/", "=", '"', "'", ",", "[", "]", "\t"])
_SHARED_STATS = LogStats(now=NOW)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(_TOKENS, _SEPARATORS), min_size=1, max_size=14),
       st.sampled_from(["", "2026-11-10 00:00:19.869 ", "Dec 12 10:00:00 ", "[2026-11-10T00:00:19Z] ",
                        "2026-11-10 00:00:19 +0200abcd ", "2026-11-10 00:00:19,0123abcd ", "2026-11-10 00:00:19-0130beef "]),
       st.sampled_from(["[ERROR] ", "[INFO] ", "", "level=error ", 'level=info msg="x" ', "level=abcdef12 ERROR "]),
       st.integers(0, 1300))
def test_two_level_memo_classifies_exactly_like_the_rules(parts, stamp, level, pad):
    """Lines of hex words, ids, addresses, durations, quotes and non-ASCII bytes: the
    memoized key (digit shape, then hex shape, shared across examples so shapes collide)
    must equal the rules applied to the line itself, at every length (``pad`` pushes
    hex words across the part normalize reads).  Hex words where a stamp's fraction or zone
    or a logrus level could read into them ("+0200abcd" after a stamp) must stay apart."""
    body = "".join(token + sep for token, sep in parts)
    raw = (stamp + level + "x" * (pad if pad > 1000 else 0) + " " + body).encode("utf-8")
    raw = raw.replace(b"<FF>", b"\xff")
    for stamped in (False, True):
        assert _SHARED_STATS._error_key(raw, stamped) == _rules(raw, stamped), (raw, stamped)


def test_memo_stays_bounded_with_a_fresh_id_on_every_line():
    stats = LogStats(now=NOW)
    for n in range(health.MAX_SHAPES * 3):
        stats.feed(f"2024-03-04 10:00:00 [ERROR] job {n:x}{letters(n)}abc done\n".encode())
    stats.close()
    assert all(len(memo) <= health.MAX_SHAPES for memo in stats._shapes)
    assert stats.error_lines == health.MAX_SHAPES * 3


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "python"])
def test_memos_stay_bounded_in_bytes_on_long_distinct_error_lines(monkeypatch, accelerated):
    """Hostile input: every error line long (up to MAX_LINE looked at) and distinct in its
    words; the memos start over before they hold MEMO_BYTES, and nothing is miscounted."""
    monkeypatch.setattr(health, "_ACCELERATED", accelerated)
    rng = random.Random(3)
    stats = LogStats(now=NOW)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa"]
    lines = 1500
    for n in range(lines):
        body = " ".join(rng.choice(words) for _ in range(1400))[:health.MAX_LINE]
        stats.feed(f"2024-03-04 10:00:00 [ERROR] {body}\n".encode())
    stats.close()
    memos = [*stats._shapes, *stats._hex_shapes, stats._hex_codes]
    assert all(memo.held <= health.MEMO_BYTES and
               sum(map(len, memo)) <= health.MEMO_BYTES for memo in memos)
    assert stats.error_lines == lines


@pytest.mark.parametrize("a, b", [
    ('level=error msg="poll failed"', 'level=error msg="policy failed"'),
    ("failed to poll server", "failed to update users"),
])
def test_different_messages_stay_apart(a, b):
    assert normalize(a) != normalize(b)


def letters(n: int) -> str:
    word = ""
    while True:
        n, rest = divmod(n, 26)
        word += "ghijklmnopqrstuvwxyzGHIJKL"[rest]       # no hex letters: never a placeholder
        if not n:
            return word


def test_memory_stays_bounded_with_100k_distinct_error_lines():
    blocks = []
    for block in range(100):
        lines = []
        for i in range(1000):
            n = block * 1000 + i
            lines.append(f"2024/03/04 10:{n % 60:02d}:00 [7] [ERROR] unique failure {letters(n)}\n")
            if i % 10 == 0:
                lines.append("2024/03/04 11:00:00 [7] [ERROR] the frequent failure\n")
        blocks.append("".join(lines).encode())
    stats = LogStats(now=NOW)
    tracemalloc.start()
    try:
        for block in blocks:
            stats.feed(block)
        stats.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.error_lines == 110_000
    assert len(stats._groups) <= health.MAX_GROUPS
    assert stats.evicted >= 100_000 - health.MAX_GROUPS
    top = stats.top_errors()
    assert top[0]["message"] == "[<N>] [ERROR] the frequent failure" and top[0]["count"] == 10_000
    assert peak < 12 * 1024 * 1024, peak


def test_an_endless_line_is_held_only_up_to_the_cap():
    stats = LogStats(now=NOW)
    for _ in range(200):
        stats.feed(b"y" * 65536)
        assert len(stats._partial) <= health.MAX_LINE
    stats.feed(b"\n2024/03/04 10:00:00 [1] [ERROR] after\n")
    stats.close()
    assert stats.lines == 2 and stats.error_lines == 1


# --------------------------------------------------------------------------- log findings


def log_ending_at(when: datetime, level: str = "INFO") -> LogStats:
    stats = LogStats(now=NOW)
    stats.feed(f"{when:%Y/%m/%d %H:%M:%S} [1] [{level}] something happened\n".encode())
    stats.close()
    return stats


def linux_root(tmp_path: Path, conf: dict | None = None, live: bool = False) -> Linux:
    (tmp_path / "opt/jc").mkdir(parents=True, exist_ok=True)
    if conf is not None:
        (tmp_path / "opt/jc/jcagent.conf").write_text(json.dumps(conf))
    return Linux(tmp_path, live=live, processes=lambda: [])


@pytest.mark.parametrize("hours, silent", [(23, False), (25, True)])
def test_silent_log(tmp_path, hours, silent):
    stats = log_ending_at(NOW - timedelta(hours=hours))
    found = findings(linux_root(tmp_path), None, None, None, stats, NOW)
    assert ("agent-log-silent" in ids(found)) is silent
    if silent:
        assert by_id(found, "agent-log-silent").severity == "warning"
        assert "25 h" in by_id(found, "agent-log-silent").evidence


def test_no_timestamp_means_no_silence_finding(tmp_path):
    stats = stats_of(b"no timestamps here\nnor here\n")
    assert stats.last_timestamp is None
    assert findings(linux_root(tmp_path), None, None, None, stats, NOW) == []


def test_silence_is_measured_against_an_aware_now(tmp_path):
    stats = log_ending_at(NOW - timedelta(hours=2))
    aware = NOW.astimezone()           # the same instant, with the local zone
    assert "agent-log-silent" not in ids(findings(linux_root(tmp_path), None, None, None, stats, aware))


@pytest.mark.parametrize("hours_ago, severity", [(2, "warning"), (30, "info")])
def test_error_summary_severity_follows_recency(tmp_path, hours_ago, severity):
    stats = stats_of(SAMPLE_LOG.read_bytes())
    now = datetime(2024, 3, 4, 8, 9, 21) + timedelta(hours=hours_ago)
    finding = by_id(findings(linux_root(tmp_path), None, None, None, stats, now), "agent-log-errors")
    assert finding.severity == severity
    assert finding.evidence.count("\n") == 3            # four groups, one line each
    assert "2x [<N>] [ERROR] failed to poll server" in finding.evidence
    assert "first 2024-03-04T08:01:05, last 2024-03-04T08:02:07" in finding.evidence


def test_error_summary_lists_at_most_five(tmp_path):
    blob = "".join(f"2024/03/04 11:00:0{i} [1] [ERROR] failure kind {letters(i)}\n" for i in range(8))
    finding = by_id(findings(linux_root(tmp_path), None, None, None, stats_of(blob.encode()), NOW),
                    "agent-log-errors")
    assert finding.evidence.count("\n") == 4 and finding.title.startswith("8 error lines")


# --------------------------------------------------------------------------- agent states


def agent_findings(platform, agent: AgentInfo) -> list[Finding]:
    return [f for f in findings(platform, None, None, agent, None, NOW) if f.id.startswith("agent-")
            and not f.id.startswith("agent-cert")]


@pytest.mark.parametrize("family, command", [
    ("linux", "sudo systemctl enable --now jcagent"),
    ("macos", "sudo launchctl kickstart -k system/com.jumpcloud.darwin-agent"),
    ("windows", "Start-Service jumpcloud-agent"),
])
def test_service_stopped_is_an_error_with_the_os_command(tmp_path, family, command):
    platform = {"linux": lambda: Linux(tmp_path, live=False), "macos": lambda: MacOS(tmp_path, live=False),
                "windows": lambda: Windows(tmp_path, live=False)}[family]()
    found = agent_findings(platform, AgentInfo(installed=True, service_name="x", service_state="stopped",
                                               service_enabled=True))
    assert ids(found) == ["agent-service-stopped"]
    assert found[0].severity == "error" and command in found[0].remediation


def test_not_installed_is_one_error_and_skips_the_certificate(tmp_path):
    found = findings(linux_root(tmp_path), None, None, AgentInfo(installed=False, service_state="absent"),
                     None, NOW)
    assert ids(found) == ["agent-not-installed"]
    assert found[0].severity == "error" and "Connect Key" in found[0].remediation


def test_disabled_but_running_is_a_warning(tmp_path):
    agent = AgentInfo(installed=True, service_state="running", service_enabled=False,
                      processes=[ProcessInfo(pid=42, name="jumpcloud-agent")])
    found = agent_findings(linux_root(tmp_path), agent)
    assert ids(found) == ["agent-service-disabled"] and found[0].severity == "warning"
    assert "starts at boot: no" in found[0].evidence


def test_running_service_without_process_is_a_warning_only_when_live(tmp_path):
    agent = AgentInfo(installed=True, service_state="running", service_enabled=True)
    assert ids(agent_findings(linux_root(tmp_path, live=True), agent)) == ["agent-process-missing"]
    assert agent_findings(linux_root(tmp_path, live=False), agent) == []


def test_healthy_agent_has_no_agent_findings(tmp_path):
    agent = AgentInfo(installed=True, service_state="running", service_enabled=True,
                      processes=[ProcessInfo(pid=42, name="jumpcloud-agent")])
    assert agent_findings(linux_root(tmp_path, live=True), agent) == []


def test_installed_without_service_is_an_error(tmp_path):
    found = agent_findings(linux_root(tmp_path), AgentInfo(installed=True, service_state="absent"))
    assert ids(found) == ["agent-service-missing"] and found[0].severity == "error"


def test_unknown_facts_skip_the_checks(tmp_path):
    assert findings(linux_root(tmp_path), None, None, None, None, NOW) == []
    assert agent_findings(linux_root(tmp_path), AgentInfo()) == []


# --------------------------------------------------------------------------- certificate


def make_cert(days_left: float, pem: bool = True) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "0123456789abcdef01234567")])
    not_after = datetime.now(timezone.utc) + timedelta(days=days_left)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_after - timedelta(days=400)).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)


def cert_findings(platform, installed=True) -> list[Finding]:
    return [f for f in findings(platform, None, None, AgentInfo(installed=installed, service_state="running",
                                                                service_enabled=True), None,
                                datetime.now(timezone.utc)) if "cert" in f.id]


@pytest.mark.parametrize("days_left, expected", [(-3, "agent-cert-expired"), (10, "agent-cert-expiring"),
                                                 (200, None)])
@pytest.mark.parametrize("pem", [True, False])
def test_linux_certificate_expiry(tmp_path, days_left, expected, pem):
    platform = linux_root(tmp_path, {"clientCrt": "/opt/jc/client.crt", "clientKey": "/opt/jc/client.key"})
    (tmp_path / "opt/jc/client.crt").write_bytes(make_cert(days_left, pem))
    found = cert_findings(platform)
    assert ids(found) == ([expected] if expected else [])
    if expected:
        assert found[0].severity == ("error" if days_left < 0 else "warning")
        assert "CN=0123456789abcdef01234567" in found[0].evidence


def test_windows_certificate_at_the_path_the_conf_names(tmp_path):
    contrib = tmp_path / WIN_CONTRIB
    contrib.mkdir(parents=True)
    elsewhere = tmp_path / "ProgramData/JumpCloud/Identity"
    elsewhere.mkdir(parents=True)
    (contrib / "jcagent.conf").write_text(json.dumps(
        {"clientCrt": "C:\\ProgramData\\JumpCloud\\Identity\\client.crt"}))
    (contrib / "client.crt").write_bytes(make_cert(200))          # not the one the conf names
    (elsewhere / "client.crt").write_bytes(make_cert(-1))
    found = cert_findings(Windows(tmp_path, live=False))
    assert ids(found) == ["agent-cert-expired"]
    assert "C:\\ProgramData\\JumpCloud\\Identity\\client.crt" in found[0].evidence


def test_macos_default_and_relative_names(tmp_path):
    (tmp_path / "opt/jc").mkdir(parents=True)
    (tmp_path / "opt/jc/ident.pem").write_bytes(make_cert(10))
    (tmp_path / "opt/jc/jcagent.conf").write_text(json.dumps({"clientCrt": "ident.pem"}))
    assert ids(cert_findings(MacOS(tmp_path, live=False))) == ["agent-cert-expiring"]
    (tmp_path / "opt/jc/jcagent.conf").unlink()
    (tmp_path / "opt/jc/client.crt").write_bytes(make_cert(-10))
    assert ids(cert_findings(MacOS(tmp_path, live=False))) == ["agent-cert-expired"]


def test_the_key_is_never_opened(tmp_path, monkeypatch):
    platform = linux_root(tmp_path, {"clientCrt": "/opt/jc/client.crt", "clientKey": "/opt/jc/client.key"})
    (tmp_path / "opt/jc/client.crt").write_bytes(make_cert(200))
    (tmp_path / "opt/jc/client.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    opened: list[str] = []
    real_open = os.open

    def spy(path, *args, **kwargs):
        if "client." in str(path):                # key material; jcagent.conf may be read
            opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(health.os, "open", spy)
    assert cert_findings(platform) == []
    assert opened == [str(tmp_path / "opt/jc/client.crt")]
    # a conf whose clientCrt names the key is refused before any read
    (tmp_path / "opt/jc/jcagent.conf").write_text(json.dumps(
        {"clientCrt": "/opt/jc/client.key", "clientKey": "/opt/jc/client.key"}))
    assert ids(cert_findings(platform)) == ["agent-cert-unchecked"]
    assert len(opened) == 1


def test_missing_damaged_and_symlinked_certificates(tmp_path):
    platform = linux_root(tmp_path, {})
    assert ids(cert_findings(platform)) == ["agent-cert-missing"]
    assert cert_findings(platform, installed=None) == []
    (tmp_path / "opt/jc/client.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
    assert ids(cert_findings(platform)) == ["agent-cert-unchecked"]
    (tmp_path / "opt/jc/client.crt").write_bytes(b"\0" * (health.CERT_MAX_BYTES + 1))
    assert "larger than" in cert_findings(platform)[0].evidence
    # a final symlink is never followed out of the examined tree: an absolute target means
    # the image's own path, where nothing is (this machine's file is never read)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.crt"
    outside.write_bytes(make_cert(-1))
    (tmp_path / "opt/jc/client.crt").unlink()
    (tmp_path / "opt/jc/client.crt").symlink_to(outside)
    mac = MacOS(tmp_path, live=False)
    assert ids(cert_findings(mac)) == ["agent-cert-missing"]


def test_jcagent_conf(tmp_path):
    assert jcagent_conf(Linux(FIXTURES / "linux/ubuntu2204", live=False))["clientCrt"] == "/opt/jc/client.crt"
    platform = linux_root(tmp_path)
    assert jcagent_conf(platform) is None
    (tmp_path / "opt/jc/jcagent.conf").write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": 1}).encode())
    assert jcagent_conf(platform) == {"a": 1}
    (tmp_path / "opt/jc/jcagent.conf").write_text("{not json")
    assert jcagent_conf(platform) is None


def test_windows_conf_named_by_the_registry_comes_first(tmp_path):
    class Registry:
        def value(self, key, name):
            return "D:\\JC\\jcagent.conf" if name == "ConfigFile" else None

    (tmp_path / WIN_CONTRIB).mkdir(parents=True)
    (tmp_path / WIN_CONTRIB / "jcagent.conf").write_text(json.dumps({"where": "contrib"}))
    (tmp_path / "JC").mkdir()
    (tmp_path / "JC/jcagent.conf").write_text(json.dumps({"where": "registry"}))
    assert jcagent_conf(Windows(tmp_path, live=False, registry=Registry())) == {"where": "registry"}


# --------------------------------------------------------------------------- clock skew


def fake_get(offset_seconds: float, now: datetime):
    calls = []

    def get(url):
        calls.append(url)
        return {"Content-Type": "text/html", "date": format_datetime(now + timedelta(seconds=offset_seconds),
                                                                      usegmt=True)}
    return get, calls


@pytest.mark.parametrize("offset, expected", [(30, None), (-59, None), (120, "warning"), (-120, "warning"),
                                              (301, "error"), (-3600, "error")])
def test_clock_skew_with_a_fake_server(tmp_path, offset, expected):
    now = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)
    get, calls = fake_get(offset, now)
    found = findings(linux_root(tmp_path), None, None, None, None, now, online_url="https://x.test/", http_get=get)
    assert calls == ["https://x.test/"]
    skew = [f for f in found if f.id == "clock-skew"]
    assert [f.severity for f in skew] == ([expected] if expected else [])
    if expected:
        assert ("behind" if offset > 0 else "ahead") in skew[0].title


def test_clock_is_not_checked_without_online_url_and_failures_are_reported(tmp_path):
    get, calls = fake_get(999, datetime.now(timezone.utc))
    findings(linux_root(tmp_path), None, None, None, None, NOW, http_get=get)
    assert calls == []

    def broken(url):
        raise ConnectionError("refused")
    found = findings(linux_root(tmp_path), None, None, None, None, NOW, online_url="https://x.test/",
                     http_get=broken)
    assert ids(found) == ["clock-check-failed"] and found[0].severity == "info"


@pytest.mark.parametrize("offset, expected", [(0, []), (-600, ["clock-skew"])])
def test_clock_skew_against_a_real_http_server(tmp_path, monkeypatch, offset, expected):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    class Handler(BaseHTTPRequestHandler):
        def date_time_string(self, timestamp=None):
            return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=offset), usegmt=True)

        def do_HEAD(self):
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        found = findings(linux_root(tmp_path), None, None, None, None, datetime.now(timezone.utc),
                         online_url=url)
    finally:
        server.shutdown()
        server.server_close()
    assert ids(found) == expected
    if expected:
        assert found[0].severity == "error" and "ahead" in found[0].title


# --------------------------------------------------------------------------- disk space


def test_low_disk_space_on_live_systems_only(tmp_path, monkeypatch):
    temp = str(tmp_path / "tmp")
    monkeypatch.setattr(health.tempfile, "gettempdir", lambda: temp)
    free = {"/": 300 << 20, temp: 5 << 30}
    asked = []

    def volume_free(path):
        asked.append(path)
        return path, free[path]

    monkeypatch.setattr(health, "volume_free", volume_free)
    found = findings(linux_root(tmp_path, live=True), None, None, None, None, NOW)
    assert ids(found) == ["low-disk-space"] and "300 MiB" in found[0].evidence
    assert "system volume" in found[0].title
    free[temp] = 10 << 20
    found = findings(linux_root(tmp_path, live=True), None, None, None, None, NOW)
    assert [f.title for f in found] == ["Less than 1 GiB free on the system volume",
                                        "Less than 1 GiB free on the temp volume"]
    asked.clear()
    assert findings(linux_root(tmp_path, live=False), None, None, None, None, NOW) == []
    assert asked == []


def test_one_volume_is_reported_once(tmp_path, monkeypatch):
    monkeypatch.setattr(health, "volume_free", lambda path: (1, 10 << 20))
    assert ids(findings(linux_root(tmp_path, live=True), None, None, None, None, NOW)) == ["low-disk-space"]


def test_the_real_seam_answers_device_and_free_bytes(tmp_path):
    device, free = REAL_VOLUME_FREE(str(tmp_path))
    assert device == os.stat(tmp_path).st_dev and free > 0


# --------------------------------------------------------------------------- shape


def test_findings_are_sorted_errors_first_and_serialize(tmp_path):
    stats = log_ending_at(NOW - timedelta(days=3), level="ERROR")
    found = findings(linux_root(tmp_path), None, None, AgentInfo(installed=True, service_state="stopped"),
                     stats, NOW)
    assert [f.severity for f in found] == ["error", "warning", "warning", "info"]
    assert ids(found) == ["agent-service-stopped", "agent-log-silent", "agent-cert-missing", "agent-log-errors"]
    assert set(found[0].to_dict()) == {"id", "severity", "title", "evidence", "remediation"}
    json.dumps([f.to_dict() for f in found])


# --------------------------------------------------------------------------- block-wide = line by line

_STAMPS = ["{d} {t}", "{d} {t}.123", "[{d}T{t}]", '{d}T{t}Z', "{d} {t} +0200", "{d2} {t}", "{sl}",
           "{dslash} {t}", '  {d} {t}', "", "", "    at frame {n}", "{bad} {t}"]
_BODIES = ["[ERROR] failed to poll {hexid}: EOF", "[INFO] ok {n}ms", "ERROR job {uuid} took {n}ms",
           "[WARN] error budget {n}%", "panic: runtime error: index out of range [{n}]",
           "[ERROR] resolution {n}x{n} refused 0x{n}", "level=error msg=\"policy {n} failed\"",
           "[FATAL] disk {word} full", "[ERROR] \xe9t\xe9 {hexid}", "goroutine {n} [running]: errors.go",
           "[ERROR] ids {hexid} {hexid},{hexid}/{hexid}.json:{hexid} 0x{hexid} {hexid}\xe9 \xe9{hexid} {hexid}",
           "+{n}{hexid} [ERROR] zone-like", ",{n}{hexid} [ERROR] fraction-like", "level={hexid} ERROR x",
           "[ERROR] uuid-ish {hexid8}-1111-4222-8333-{hexid12} {hexid8}-{hexid12}",
           "[ERROR] long {hexid} " + "w" * 1190 + " {hexid} end", "[ERROR] longer {hexid} " + "v" * 9000]


def _block_log(rng: random.Random, lines: int) -> bytes:
    """Lines of many stamp layouts (zones, two-digit years, syslog, bracketed, none, dates
    that are no dates), clocks that step back, fresh ids, "7x" that shaping would make "0x";
    fresh hex words of every length, many on a line, next to non-ASCII letters, in UUIDs,
    where a stamp's fraction or zone could read into them, on lines around the length
    normalize reads and past MAX_LINE; CR line ends."""
    when = datetime(2024, 2, 27, 22, 0)
    out = []
    for _ in range(lines):
        when += timedelta(seconds=rng.choice([1, 7, 61, 900, -3, -3700]))
        stamp = rng.choice(_STAMPS).format(
            d=when.strftime("%Y-%m-%d"), t=when.strftime("%H:%M:%S"), d2=when.strftime("%y-%m-%d"),
            dslash=when.strftime("%Y/%m/%d"), sl=when.strftime("%b %d %H:%M:%S"), n=rng.randint(0, 99),
            bad=rng.choice(["2024-02-30", "2024-13-01", "0000-01-01", "2024-02-29"]))
        if rng.random() < 0.05:
            stamp = stamp.replace(when.strftime("%H:%M:%S"), rng.choice(["24:00:00", "10:60:00", "10:00:61"]))
        body = rng.choice(_BODIES).format(hexid="%0*x" % (rng.choice([8, 9, 12, 24, 32]), rng.getrandbits(128)),
                                          hexid8="%08x" % rng.getrandbits(32), hexid12="%012X" % rng.getrandbits(48),
                                          n=rng.randint(0, 999),
                                          uuid=str(uuid.UUID(int=rng.getrandbits(128))),
                                          word=rng.choice(["sda", "sdb", "nvme0"]))
        line = (stamp + " " + body).lstrip(" ") if stamp and rng.random() < 0.9 else stamp + body
        out.append(line + rng.choice(["", "", "", "\r", "\r\r"]))
    return ("\n".join(out) + "\n").encode()


def _rules(raw: bytes, stamped: bool):
    """A line's key by the module's rules on the line itself (no memo, no shapes)."""
    text = raw.decode("utf-8", errors="replace")
    message = health._STAMP.sub("", text, count=1) if stamped else text.lstrip()
    return normalize(message) if is_error_line(message) else None


def _line_by_line(max_groups: int = health.MAX_GROUPS) -> LogStats:
    stats = LogStats(now=NOW, max_groups=max_groups)
    stats._block_errors = lambda block, before: None           # the reference: one line at a time,
    stats._error_key = _rules                                  # each classified by the rules
    return stats


def _everything(stats: LogStats) -> tuple:
    summary = stats.to_summary()
    groups = {k: (g.count, g.first, g.last, g.example) for k, g in stats._groups.items()}
    return snapshot(stats), stats.evicted, groups, list(stats._groups), summary["timeline"], \
        stats.timeline.to_dict(list(stats._groups))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2 ** 32), st.integers(50, 1500), st.sampled_from([health.MAX_GROUPS, 40, 8]),
       st.sampled_from([1 << 20, 4096, 333]))
def test_block_wide_statistics_equal_line_by_line(seed, lines, max_groups, chunk):
    """The block-wide way (LogStats._block_errors) against the line-by-line way on logs of
    every layout: same counts, first/last seen, examples, group order (eviction), timeline;
    the reference classifies each line by the rules, so the memos are checked too."""
    rng = random.Random(seed)
    logs = [_block_log(rng, lines), _block_log(rng, lines // 3)]
    fast, slow = LogStats(now=NOW, max_groups=max_groups), _line_by_line(max_groups)
    for stats in (fast, slow):
        for log in logs:
            for i in range(0, len(log), chunk):
                stats.feed(log[i:i + chunk])
            stats.close()
    assert _everything(fast) == _everything(slow)


def agent_log(lines: int, seed: int = 5) -> bytes:
    """The usual agent log: one stamp layout, every third line an error, fresh ids."""
    rng = random.Random(seed)
    out = []
    when = datetime(2026, 11, 1)
    for i in range(lines):
        when += timedelta(milliseconds=rng.randint(5, 900))
        level = "ERROR" if i % 3 == 0 else "INFO"
        out.append(f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 1000:03d} [{level}] request "
                   f"{rng.getrandbits(128):032x} failed after {rng.randint(1, 900)}ms\n")
    return "".join(out).encode()


def test_block_wide_statistics_take_the_fast_way_on_agent_logs():
    """The usual agent log (one stamp layout, a third error lines, fresh ids) is counted
    block-wide, not line by line, and gives the line-by-line answer."""
    log = agent_log(6000)
    fast, slow = LogStats(now=NOW), _line_by_line()
    taken = []
    real = fast._block_errors
    fast._block_errors = lambda block, before: taken.append(real(block, before)) or taken[-1]
    for stats in (fast, slow):
        stats.feed(log)
        stats.close()
    assert taken == [log.count(b"\n")] and fast.error_lines == 2000
    assert _everything(fast) == _everything(slow)


_FRAGMENTS = ["0", "7", "42", "255", "1.5", "10.0.0.1", "192.168.10.200:8443", "::1", "fe80::1", "2001:db8::a:b",
              "a:b:c:d", "0x1f", "0X7", "deadbeef12", "abcdef", "12ab", "ms", "us", "µs", "s", "h", "5ms", "1.5s",
              "1h2m3s", "msg=", "=", ":", ".", "-", "/", ",", "(", ")", "[", "]", "_", "x", "error", "Fatal",
              "é", "٣", "ß", "K", "9f8e7d6c-5b4a-3f2e-1d0c-9b8a7f6e5d4c", "'", '"']
_SPACES = [" ", "  ", "\t", "\x1c", "\xa0", "\u2028", "\n", ""]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_FRAGMENTS), st.sampled_from(_SPACES)), max_size=40),
       st.sampled_from(["", " ", "\t"]))
def test_word_by_word_normalize_equals_the_whole_pass(parts, lead):
    """normalize (word by word, memoized) is normalize_whole (one pass) on any message:
    addresses, durations, hex and numbers glued to punctuation or split by any kind of
    whitespace, Unicode digits and letters, quotes (the whole pass), over the length cut."""
    message = lead + "".join(fragment + space for fragment, space in parts)
    assert normalize(message) == normalize_whole(message)
    assert normalize(message) == normalize(message)             # again, from the memo
    long = (message + " ") * 40
    assert normalize(long) == normalize_whole(long)
