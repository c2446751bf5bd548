"""The safety rules of gathering, each with its exact outcome."""
import os
import gzip

import pytest
from hypothesis import given, settings, strategies as st

from collector.gather import Gatherer, Limits, _TailSpool
from collector.redact import Redactor
from collector.sources import CommandSource, FileSource
from platforms.base import LiveRunner
from tests.fakes import TreePlatform


def gather(root, sources, tmp_path, limits=None, never=(), runner=None, progress=None, family="linux",
           by_name=False):
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    platform = TreePlatform(root, sources, never=never, runner=runner, family=family)
    g = Gatherer(platform, staging, Redactor(), limits or Limits(), progress=progress)
    arts = g.run(platform.sources())
    return {a.name or a.source: a for a in arts} if by_name else {a.source: a for a in arts}, staging


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "var/log").mkdir(parents=True)
    return r


def log_source(pattern="/var/log/jcagent.log*"):
    return FileSource(pattern, "logs/agent", "agent-logs")


def test_plain_log_and_rotations_are_collected(root, tmp_path):
    for name in ("jcagent.log", "jcagent.log.1", "jcagent.log.2"):
        (root / "var/log" / name).write_text(f"2026-11-01 10:00:00 [INFO] {name}\n")
    arts, staging = gather(root, [log_source()], tmp_path)
    assert {a.name for a in arts.values()} == {"logs/agent/jcagent.log", "logs/agent/jcagent.log.1",
                                               "logs/agent/jcagent.log.2"}
    assert (staging / "logs/agent/jcagent.log.1").read_text().endswith("jcagent.log.1\n")
    a = arts["/var/log/jcagent.log"]
    assert a.status == "collected" and a.size == len("2026-11-01 10:00:00 [INFO] jcagent.log\n")


def test_symlink_out_of_its_folder_is_not_followed(root, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$hash:19000:0:99999:7:::\n")
    os.symlink(secret, root / "var/log/jcagent.log")
    arts, staging = gather(root, [FileSource("/var/log/jcagent.log", "logs/agent", "agent-logs")], tmp_path)
    a = arts["/var/log/jcagent.log"]
    assert a.status == "skipped"
    assert "outside" in a.reason and "not followed" in a.reason
    assert not any(staging.rglob("*jcagent*"))


def test_symlink_inside_its_folder_is_followed_once(root, tmp_path):
    (root / "var/log/jcagent.log.current").write_text("hello\n")
    os.symlink("jcagent.log.current", root / "var/log/jcagent.log")
    arts, _ = gather(root, [log_source()], tmp_path)
    assert [a.status for a in arts.values()] == ["collected"]     # the duplicate is not listed


def test_folder_symlinked_outside_a_non_live_root_is_refused(root, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "jcagent.log").write_text("x\n")
    os.symlink(outside, root / "var/log/jumpcloud")
    arts, _ = gather(root, [FileSource("/var/log/jumpcloud", "logs/jc", "agent-logs", recursive=True)],
                     tmp_path)
    assert arts["/var/log/jumpcloud"].status == "skipped"
    assert "outside /var/log" in arts["/var/log/jumpcloud"].reason and "not followed" in arts["/var/log/jumpcloud"].reason


@pytest.mark.timeout(20)
def test_fifo_at_a_log_path_does_not_hang(root, tmp_path):
    os.mkfifo(root / "var/log/jcagent.log")
    arts, _ = gather(root, [FileSource("/var/log/jcagent.log", "logs/agent", "agent-logs")], tmp_path)
    a = arts["/var/log/jcagent.log"]
    assert a.status == "skipped" and "FIFO" in a.reason


def test_device_file_is_not_read(tmp_path):
    arts, _ = gather("/", [FileSource("/dev/zero", "logs/x", "agent-logs")], tmp_path)
    assert arts["/dev/zero"].status == "skipped" and "device" in arts["/dev/zero"].reason


def test_absent_file_is_recorded_as_absent(root, tmp_path):
    arts, _ = gather(root, [FileSource("/var/log/jcUpdate.log", "logs/agent", "agent-logs")], tmp_path)
    assert arts["/var/log/jcUpdate.log"].status == "absent"


def test_non_utf8_bytes_survive_and_binary_is_left_out(root, tmp_path):
    latin = b"2026-11-01 10:00:00 caf\xe9 na\xefve \xff\xfe bytes\n"
    (root / "var/log/jcagent.log").write_bytes(latin)
    (root / "var/log/jcagent.log.1").write_bytes(b"\x00\x01\x02ELF\x00" * 200)
    arts, staging = gather(root, [log_source()], tmp_path)
    assert (staging / "logs/agent/jcagent.log").read_bytes() == latin
    b = arts["/var/log/jcagent.log.1"]
    assert b.status == "skipped" and "binary" in b.reason


def test_utf16_windows_log_becomes_utf8(root, tmp_path):
    text = "2026-11-01 10:00:00 service started ü\r\n"
    (root / "var/log/jcagent.log").write_bytes(text.encode("utf-16"))
    arts, staging = gather(root, [log_source()], tmp_path)
    assert (staging / "logs/agent/jcagent.log").read_bytes().decode("utf-8") == text


def test_max_file_size_keeps_the_newest_whole_lines(root, tmp_path):
    lines = [f"2026-11-01 10:{i // 60:02d}:{i % 60:02d} line {i:05d}\n" for i in range(3000)]
    (root / "var/log/jcagent.log").write_text("".join(lines))
    arts, staging = gather(root, [log_source()], tmp_path, limits=Limits(max_file_size=10_000))
    kept = (staging / "logs/agent/jcagent.log").read_text()
    a = arts["/var/log/jcagent.log"]
    assert a.truncated and "newest" in a.truncation[0]
    assert kept.endswith(lines[-1]) and len(kept) <= 10_000
    assert kept.splitlines(keepends=True)[0] in lines      # starts on a whole line


def test_since_keeps_records_from_when_with_their_continuations(root, tmp_path):
    from datetime import datetime
    (root / "var/log/jcagent.log").write_text(
        "2026-10-01 08:00:00 [ERROR] old failure\n  old stack line\n"
        "2026-11-01 09:00:00 [ERROR] new failure\n  new stack line\n"
        "26-11-02 10:00:00 [INFO] short year format\n")
    arts, staging = gather(root, [log_source()], tmp_path,
                           limits=Limits(since=datetime(2026, 11, 1)))
    kept = (staging / "logs/agent/jcagent.log").read_text()
    assert kept == ("2026-11-01 09:00:00 [ERROR] new failure\n  new stack line\n"
                    "26-11-02 10:00:00 [INFO] short year format\n")
    assert arts["/var/log/jcagent.log"].truncated


def test_since_keeps_a_file_without_timestamps_whole_and_says_so(root, tmp_path):
    from datetime import datetime
    (root / "var/log/jcagent.log").write_text("no timestamp here\nnor here\n")
    arts, staging = gather(root, [log_source()], tmp_path, limits=Limits(since=datetime(2026, 11, 1)))
    assert (staging / "logs/agent/jcagent.log").read_text() == "no timestamp here\nnor here\n"
    assert "no timestamps" in arts["/var/log/jcagent.log"].errors[0]


def test_file_growing_during_the_read_is_copied_as_seen_at_open(root, tmp_path):
    path = root / "var/log/jcagent.log"
    line = b"2026-11-01 10:00:00 [INFO] steady line of the agent log\n"
    path.write_bytes(line * 60000)                 # ~3.3 MB, several chunks
    size_at_open = path.stat().st_size
    appended = []

    def grow(label, nbytes):
        if not appended:
            with open(path, "ab") as fh:
                fh.write(b"2026-11-01 10:00:01 [INFO] appended later\n" * 30000)
            appended.append(True)
    arts, staging = gather(root, [log_source()], tmp_path, progress=grow)
    assert appended
    assert arts["/var/log/jcagent.log"].size == size_at_open
    assert b"appended later" not in (staging / "logs/agent/jcagent.log").read_bytes()


def test_rotated_gzip_log_is_decompressed_and_tail_capped(root, tmp_path):
    lines = b"".join(b"2026-11-01 10:00:00 gz line %05d\n" % i for i in range(2000))
    with gzip.open(root / "var/log/jcagent.log.3.gz", "wb") as fh:
        fh.write(lines)
    arts, staging = gather(root, [log_source()], tmp_path, limits=Limits(max_file_size=5000))
    a = arts["/var/log/jcagent.log.3.gz"]
    assert a.name == "logs/agent/jcagent.log.3" and a.truncated
    kept = (staging / a.name).read_bytes()
    assert lines.endswith(kept) and len(kept) <= 5000


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), cap=st.integers(1, 700),
       sizes=st.lists(st.integers(1, 900), min_size=1, max_size=12))
def test_tail_spool_keeps_exactly_the_newest_bytes(data, cap, sizes, tmp_path_factory):
    """The one-pass ring behind .gz tails: any chunking, chunks larger than the cap included."""
    with _TailSpool(cap, tmp_path_factory.mktemp("ring")) as tail:
        at, i = 0, 0
        while at < len(data):
            n = sizes[i % len(sizes)]
            tail.write(data[at:at + n])
            at, i = at + n, i + 1
        assert tail.total == len(data)
        assert b"".join(tail.chunks()) == (data[-cap:] if data else b"")


def test_bundle_cap_skips_what_does_not_fit_and_says_so(root, tmp_path):
    for i in range(3):
        (root / "var/log" / f"jcagent.log.{i}").write_text(("x" * 99 + "\n") * 60)
    arts, _ = gather(root, [log_source()], tmp_path, limits=Limits(max_bundle_size=11000))
    statuses = [arts[f"/var/log/jcagent.log.{i}"] for i in range(3)]
    assert statuses[0].status == "collected" and not statuses[0].truncated
    assert statuses[1].truncated                      # the rest of the budget, newest part
    assert statuses[2].status == "skipped" and "cap" in statuses[2].reason


def test_never_collect_wins_over_every_include(root, tmp_path):
    agent = root / "opt/jc"
    (agent / "nested/deeper").mkdir(parents=True)
    for name in ("client.key", "client.crt", "ca.crt", "nested/deeper/other.key", "nested/x.p12",
                 "jcagent.conf"):
        (agent / name).write_text("SECRET MATERIAL\n" if name != "jcagent.conf" else "{}\n")
    custom = root / "srv/keys"
    custom.mkdir(parents=True)
    (custom / "agent-identity").write_text("SECRET MATERIAL\n")
    os.link(custom / "agent-identity", agent / "innocent.log")      # a hard link in disguise
    arts, staging = gather(root, [FileSource("/opt/jc", "config/agent", "agent-config", recursive=True),
                                  FileSource("/srv/keys/*", "x", "x")],
                           tmp_path, never=["/srv/keys/agent-identity"])
    collected = [p.read_bytes() for p in staging.rglob("*") if p.is_file()]
    assert collected == [b"{}\n"]
    skipped = [a for a in arts.values() if a.status == "skipped"]
    assert len(skipped) == 7 and all("never collected" in a.reason for a in skipped)


@pytest.mark.timeout(30)
def test_hung_command_is_killed_at_its_deadline(root, tmp_path):
    src = CommandSource(("sh", "-c", "echo started; sleep 60"), "hang.txt", "commands", timeout=1)
    arts, staging = gather(root, [src], tmp_path, runner=LiveRunner())
    a = arts["sh -c echo started; sleep 60"]
    assert a.status == "failed" and "deadline" in a.reason
    assert (staging / "commands/hang.txt").read_text() == "started\n"


def test_command_missing_and_nonzero_exit(root, tmp_path):
    arts, staging = gather(root, [CommandSource(("no-such-command-xyz",), "x.txt", "commands"),
                                  CommandSource(("sh", "-c", "echo out; echo err >&2; exit 3"), "y.txt",
                                                "commands")], tmp_path, runner=LiveRunner(), by_name=True)
    assert arts["no-such-command-xyz"].status == "absent"
    y = arts["commands/y.txt"]
    assert y.status == "collected" and y.errors == ["exit status 3"]
    assert (staging / "commands/y.txt.stderr").read_text() == "err\n"


def test_offline_root_runs_no_command(root, tmp_path):
    arts, _ = gather(root, [CommandSource(("touch", str(tmp_path / "ran")), "t.txt", "commands")], tmp_path)
    assert not (tmp_path / "ran").exists()
    assert arts[f"touch {tmp_path / 'ran'}"].status == "skipped"


def test_windows_globs_match_case_insensitively(tmp_path):
    r = tmp_path / "c"
    (r / "Windows/Temp").mkdir(parents=True)
    (r / "Windows/Temp/JCAgent.LOG.prev").write_text("x\n")
    arts, _ = gather(r, [FileSource("C:\\Windows\\Temp\\jcagent.log.*", "logs/agent", "agent-logs")],
                     tmp_path, family="windows")
    (a,) = arts.values()
    assert a.status == "collected" and a.source == "C:\\Windows\\Temp\\JCAgent.LOG.prev"


def test_a_small_file_cap_truncates_and_does_not_skip(root, tmp_path):
    (root / "var/log/jcagent.log").write_text("2026-11-01 10:00:00 line\n" * 400)
    arts, staging = gather(root, [log_source()], tmp_path, limits=Limits(max_file_size=1000))
    a = arts["/var/log/jcagent.log"]
    assert a.status == "collected" and a.truncated and 0 < a.size <= 1000


@pytest.mark.parametrize("fail_at", [1, 6])
def test_redaction_failure_midway_leaves_nothing_of_the_file_in_the_payload(root, tmp_path, monkeypatch, fail_at):
    """Streamed straight into the payload, a log whose redaction fails after some chunks
    is still dropped whole (fail closed): the bundle holds the other files only."""
    import py7zr

    from collector import redact
    from collector.sevenzip import StreamingWriter

    big = b"".join(b"2026-11-10 10:00:%02d [INFO] line %07d of a long log\n" % (i % 60, i) for i in range(300_000))
    (root / "var/log/jcagent.log").write_bytes(big)
    (root / "var/log/jcagent.log.1").write_bytes(b"2026-11-09 10:00:00 [INFO] kept\n")
    real_feed = redact.TextScrubber.feed
    calls = {}

    def failing(self, data):
        if self.artifact.endswith("jcagent.log"):
            calls[self.artifact] = calls.get(self.artifact, 0) + 1
            if calls[self.artifact] == fail_at:
                raise RuntimeError("scrubber broke")
        return real_feed(self, data)

    monkeypatch.setattr(redact.TextScrubber, "feed", failing)
    staging = tmp_path / "staging"
    staging.mkdir()
    platform = TreePlatform(root, [log_source()])
    archive = tmp_path / "payload.7z"
    with StreamingWriter(archive, "pw", block_size=256 << 10, background=True) as writer:
        arts = Gatherer(platform, staging, Redactor(), Limits(), payload=writer).run(platform.sources())
    by_source = {a.source: a for a in arts}
    failed = by_source["/var/log/jcagent.log"]
    assert failed.status == "failed" and "redaction failed" in failed.reason and not failed.name
    with py7zr.SevenZipFile(archive, "r", password="pw") as reader:
        assert reader.getnames() == ["logs/agent/jcagent.log.1"]
        reader.extractall(path=tmp_path / "out")
    assert (tmp_path / "out/logs/agent/jcagent.log.1").read_bytes() == b"2026-11-09 10:00:00 [INFO] kept\n"
    assert not any(staging.rglob("*.log*"))                 # nothing went through staging
