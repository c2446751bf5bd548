"""Examined systems are hostile: names, links, nesting, bombs and floods planted in them.

Each case below made the previous version write as root outside its workspace, follow a
planted link, crash or exhaust the machine.  The CLI cases run ``jcdiag collect`` as a
user would, with the workspace (TMPDIR) inside the test's folder, and check that nothing
appears outside the workspace and ``--output``.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path, PurePosixPath

import psutil
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from collector.destname import MAX_COMPONENT, destination, safe_component
from collector.gather import Gatherer, Limits
from collector.redact import Redactor
from collector.sources import CommandSource, FileSource
from platforms.base import LiveRunner
from platforms.linux import Linux
from platforms.macos import MacOS
from platforms.windows import Windows
from tests.fakes import TreePlatform
from tests.hosts import UBUNTU_2204, linux_host

REPO = Path(__file__).resolve().parent.parent
SHADOW_MARKER = "root:$6$PLANTED-SHADOW-HASH$:19000:0:99999:7:::"
PWM = ".config/JumpCloud Password Manager/logs"


def jcdiag(tmp_path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    work = tmp_path / "tmp"
    work.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(work)}
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env, stdin=subprocess.DEVNULL)


def image(tmp_path: Path, users: dict[str, str]) -> Path:
    """A Linux image whose etc/passwd lists ``users`` (name -> home), homes created."""
    root = linux_host(tmp_path / "img")
    lines = ["root:x:0:0:root:/root:/bin/bash"]
    for uid, (name, home) in enumerate(users.items(), start=1000):
        lines.append(f"{name}:x:{uid}:{uid}::{home}:/bin/bash")
        (root / home.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("\n".join(lines) + "\n")
    (root / "etc/shadow").write_text(SHADOW_MARKER + "\n")
    return root


def collect_review(tmp_path: Path, root: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    review = tmp_path / "review"
    r = jcdiag(tmp_path, "collect", "--root", str(root), "--platform", "linux", "--review", str(review),
               "--json", "--yes", *extra)
    return r, review


def one_json(r: subprocess.CompletedProcess) -> dict:
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, (r.stdout, r.stderr)
    return json.loads(lines[0])


def manifest(review: Path) -> list[dict]:
    return json.loads((review / "manifest.json").read_text())["artifacts"]


def top_level(tmp_path: Path) -> set[str]:
    """What the test folder holds besides the workspace (TMPDIR) and the private spool/lock."""
    return {p.name for p in tmp_path.iterdir()} - {"tmp", "jcdiag-state"}


# ---------------------------------------------------------------------- names from the image


def test_passwd_user_name_cannot_choose_a_destination_in_bundle_mode(tmp_path):
    evil = "../../../../../escape"                # from the staging folder up to tmp_path
    root = image(tmp_path, {evil: "/home/evil"})
    (root / "home/evil" / PWM).mkdir(parents=True)
    (root / "home/evil" / PWM / "pm.log").write_text("2026-11-20 10:00:00 password manager up\n")
    password = tmp_path / "pw.txt"
    password.write_text("correct horse battery staple\n")
    out = tmp_path / "out"
    before = top_level(tmp_path)
    r = jcdiag(tmp_path, "collect", "--root", str(root), "--platform", "linux", "--password-file",
               str(password), "--output", str(out), "--json", "--yes")
    assert r.returncode in (0, 3), r.stderr
    bundle = Path(one_json(r)["path"])
    assert not (tmp_path / "escape").exists() and not (tmp_path / "tmp" / "escape").exists()
    assert top_level(tmp_path) == before | {"out"}
    assert list((tmp_path / "tmp").iterdir()) == []                 # the workspace is gone
    opened = tmp_path / "opened"
    r = jcdiag(tmp_path, "open", str(bundle), "--password-file", str(password), "--to", str(opened))
    assert r.returncode == 0, r.stderr
    logs = [p for p in opened.rglob("pm.log")]
    assert len(logs) == 1
    rel = logs[0].relative_to(opened).parts
    assert rel[:2] == ("logs", "users") and rel[2] == safe_component(evil) and ".." not in rel


@pytest.mark.parametrize("name", ["../../../../../escape", "/abs/escape", "..", "a\\..\\..\\escape",
                                  "new\nline", "nul\x00byte", "CON", "x" * 300])
def test_hostile_user_names_stay_inside_the_review_copy(tmp_path, name):
    root = image(tmp_path, {name.replace("\x00", "").replace("\n", "") or "u": "/home/target"})
    # passwd cannot hold a NUL or newline in a field: those reach us as folder names instead
    (root / "home/target" / PWM).mkdir(parents=True)
    (root / "home/target" / PWM / "pm.log").write_text("2026-11-20 10:00:00 up\n")
    before = top_level(tmp_path)
    r, review = collect_review(tmp_path, root)
    assert r.returncode in (0, 3), r.stderr
    assert top_level(tmp_path) == before | {"review"}
    found = [p.relative_to(review) for p in review.rglob("pm.log")]
    assert len(found) == 1 and ".." not in found[0].parts and len(found[0].parts) == 5


# ---------------------------------------------------------------------- planted links


@pytest.mark.parametrize("link", ["../../../../etc", "/etc", "../../.."])
def test_user_log_folder_linked_elsewhere_in_the_image_is_refused(tmp_path, link):
    root = image(tmp_path, {"mallory": "/home/mallory"})
    logs = root / "home/mallory" / PWM
    logs.parent.mkdir(parents=True)
    os.symlink(link, logs)
    r, review = collect_review(tmp_path, root)
    assert r.returncode in (0, 3), r.stderr
    assert SHADOW_MARKER not in "".join(p.read_text(errors="replace") for p in review.rglob("*")
                                        if p.is_file())
    refused = [a for a in manifest(review) if a["source"].startswith("/home/mallory/.config")]
    assert refused and all(a["status"] == "skipped" for a in refused)
    assert any("not followed" in a["reason"] for a in refused)


def test_a_link_on_the_way_to_a_user_folder_is_refused(tmp_path):
    root = image(tmp_path, {"mallory": "/home/mallory"})
    (root / "etc/JumpCloud Password Manager/logs").mkdir(parents=True)
    (root / "etc/JumpCloud Password Manager/logs/shadow").write_text(SHADOW_MARKER + "\n")
    os.symlink("../../etc", root / "home/mallory/.config")
    r, review = collect_review(tmp_path, root)
    assert r.returncode in (0, 3), r.stderr
    assert not list(review.rglob("shadow"))


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="changing file owners needs root")


def live_user_tree(tmp_path: Path, uid: int = 4321) -> tuple[Path, Path]:
    """A fake live system: a home owned by ``uid`` with its password-manager logs."""
    root = tmp_path / "live"
    home = root / "home/alice"
    logs = home / PWM
    logs.mkdir(parents=True)
    for p in (home, home / ".config", logs.parent, logs):
        os.chown(p, uid, uid)
    (logs / "mine.log").write_text("2026-11-20 10:00:00 mine\n")
    os.chown(logs / "mine.log", uid, uid)
    return root, logs


def gather_live(root: Path, tmp_path: Path, sources) -> dict[str, object]:
    staging = tmp_path / "staging"
    staging.mkdir()
    platform = TreePlatform(root, sources, live=True)
    arts = Gatherer(platform, staging, Redactor(), Limits()).run(platform.sources())
    return {a.source: a for a in arts}


def user_source(dest="logs/users/{user}/pm") -> FileSource:
    return FileSource("/home/alice/" + PWM, dest, "user-logs", recursive=True, user="alice",
                      within="/home/alice")


@needs_root
def test_live_user_folder_files_not_owned_by_the_user_are_refused(tmp_path):
    root, logs = live_user_tree(tmp_path)
    secret = tmp_path / "root-only.txt"
    secret.write_text(SHADOW_MARKER + "\n")
    os.link(secret, logs / "hardlinked.log")             # a user's hard link to a root file
    (logs / "other.log").write_text("2026-11-20 10:00:00 other user\n")
    os.chown(logs / "other.log", 999, 999)
    (logs / "sub").mkdir()
    os.chown(logs / "sub", 999, 999)
    (logs / "sub/in-foreign-folder.log").write_text("x\n")
    arts = gather_live(root, tmp_path, [user_source()])
    by_name = {PurePosixPath(k).name: a for k, a in arts.items()}
    assert by_name["mine.log"].status == "collected"
    assert by_name["hardlinked.log"].status == "skipped" and "hard-linked" in by_name["hardlinked.log"].reason
    assert by_name["other.log"].status == "skipped" and "uid 999" in by_name["other.log"].reason
    assert "in-foreign-folder.log" not in by_name
    assert any("owned by uid 999" in a.reason for a in arts.values() if a.status == "skipped")
    staged = "".join(p.read_text() for p in (tmp_path / "staging").rglob("*") if p.is_file())
    assert SHADOW_MARKER not in staged


@needs_root
def test_live_user_folder_owned_by_someone_else_is_refused(tmp_path):
    root, logs = live_user_tree(tmp_path)
    os.chown(logs, 999, 999)
    arts = gather_live(root, tmp_path, [user_source()])
    a = arts["/home/alice/" + PWM]
    assert a.status == "skipped" and "owned by uid 999" in a.reason


@needs_root
def test_live_user_folder_that_is_a_link_out_of_the_home_is_refused(tmp_path):
    root, logs = live_user_tree(tmp_path)
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (elsewhere / "shadow").write_text(SHADOW_MARKER + "\n")
    for p in logs.iterdir():
        p.unlink()
    logs.rmdir()
    os.symlink(elsewhere, logs)
    arts = gather_live(root, tmp_path, [user_source()])
    a = arts["/home/alice/" + PWM]
    assert a.status == "skipped" and "outside /home/alice" in a.reason
    assert not list((tmp_path / "staging").rglob("shadow"))


# ---------------------------------------------------------------------- depth, bombs, floods


def test_deeply_nested_user_folder_does_not_crash_the_run(tmp_path):
    root = image(tmp_path, {"deep": "/home/deep"})
    logs = root / "home/deep" / PWM
    logs.mkdir(parents=True)
    (logs / "top.log").write_text("2026-11-20 10:00:00 top\n")
    _make_chain(logs, "d", 1100, "bottom.log")
    try:
        r, review = collect_review(tmp_path, root)
        assert r.returncode in (0, 3), r.stderr
        data = one_json(r)
        assert data["bundle_id"]
        assert list(review.rglob("top.log")) and not list(review.rglob("bottom.log"))
        deep_notes = [a for a in manifest(review) if "nested deeper than 32" in a.get("reason", "")]
        assert len(deep_notes) == 1 and deep_notes[0]["status"] == "skipped"
    finally:
        _remove_chain(logs, "d")


def _make_chain(top: Path, name: str, depth: int, leaf: str) -> None:
    """``depth`` nested ``name`` folders under ``top`` with a log ``leaf`` at the bottom,
    made relative to open folders (no PATH_MAX trouble)."""
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        with open(os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as fh:
            fh.write("2026-11-20 10:00:00 bottom\n")
    finally:
        os.close(fd)


def _remove_chain(top: Path, name: str) -> None:
    """Remove a chain of nested ``name`` folders without recursion (shutil.rmtree, and so
    pytest's own clean-up, overflows the stack on it)."""
    fds = [os.open(top, os.O_RDONLY)]
    try:
        while True:
            try:
                fds.append(os.open(name, os.O_RDONLY, dir_fd=fds[-1]))
            except FileNotFoundError:
                break
        for parent in reversed(fds[:-1]):
            child = fds.pop()
            for entry in os.listdir(child):
                os.unlink(entry, dir_fd=child)
            os.close(child)
            os.rmdir(name, dir_fd=parent)
    finally:
        for fd in fds:
            os.close(fd)


def test_gzip_bomb_rotation_is_decompressed_only_up_to_its_bound(tmp_path):
    root = image(tmp_path, {})
    line = b"2026-11-20 10:00:00 [INFO] jcagent: the same line again and again\n"
    with gzip.open(root / "var/log/jcagent.log.2.gz", "wb", compresslevel=9) as gz:
        block = line * 16384
        for _ in range(64):                          # 64 MiB of text in a small file
            gz.write(block)
    assert (root / "var/log/jcagent.log.2.gz").stat().st_size < 1024 * 1024
    r, review = collect_review(tmp_path, root, "--max-file-size", "64K")
    assert r.returncode in (0, 3), r.stderr
    art = next(a for a in manifest(review) if a["source"] == "/var/log/jcagent.log.2.gz")
    assert art["status"] == "collected" and art["truncated"]
    assert any("decompression stopped after" in t and "20x" in t for t in art["truncation"])
    assert art["size"] <= 64 * 1024


def test_command_output_is_bounded_while_it_is_read_and_the_cut_recorded(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    runner = LiveRunner(max_output=64 * 1024)
    source = CommandSource(("sh", "-c", "yes 'a runaway line' | head -c 5000000"), "flood.txt", "commands")
    platform = TreePlatform(tmp_path, [source], runner=runner, live=True)
    arts = Gatherer(platform, staging, Redactor(), Limits()).run(platform.sources())
    art = arts[0]
    assert art.status == "collected" and art.truncated
    assert art.truncation == [f"output cut after {64 * 1024} bytes; {5000000 - 64 * 1024} more bytes "
                              "were dropped"]
    assert (staging / "commands/flood.txt").stat().st_size == 64 * 1024


@pytest.mark.timeout(60)
def test_a_runaway_command_cannot_exhaust_memory(tmp_path):
    me = psutil.Process()
    before = me.memory_info().rss
    result = LiveRunner(max_output=1024 * 1024)(("yes", "x" * 200), timeout=2.0)
    grown = me.memory_info().rss - before
    assert result.timed_out and len(result.stdout) == 1024 * 1024 and result.stdout_cut > 10 * 1024 * 1024
    assert grown < 48 * 1024 * 1024, f"RSS grew by {grown / 1048576:.0f} MiB"


@pytest.mark.timeout(60)
def test_a_grandchild_holding_the_pipe_does_not_hold_the_run():
    result = LiveRunner()(("sh", "-c", "sleep 30 >/dev/null 2>&1 & sleep 30 & echo started"), timeout=20)
    assert result.stdout == b"started\n" and result.seconds < 10


# ---------------------------------------------------------------------- names, as properties

HOSTILE = st.one_of(
    st.sampled_from(["..", ".", "...", "../..", "../../etc", "/", "\\", "a/b", "a\\b", "C:", "CON",
                     "nul.txt", "com1", "Lpt9.log", " ", "trailing. ", "\u2215etc", "\uff0fetc",
                     "\u2024\u2024", "\u202e\u2066evil", "a\u200bb", "%2E%2E", "%", "%empty", "x" * 300]),
    st.text(min_size=1, max_size=300),
    st.text(alphabet=st.sampled_from("./\\\x00\n\r\t:%\u2024\uff0e\uff0f"), min_size=1, max_size=12),
)


def assert_safe_component(part: str) -> None:
    assert part and part not in (".", "..")
    assert len(part) <= MAX_COMPONENT
    assert not any(ch in part for ch in "/\\<>:\"|?*")
    assert not any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in part)
    assert part[-1] not in ". " and part[0] != " "


@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_any_name_becomes_one_safe_component(name):
    assert_safe_component(safe_component(name))


@settings(max_examples=300, deadline=None)
@given(HOSTILE, HOSTILE)
def test_different_names_never_share_a_folder(a, b):
    if a != b:
        assert safe_component(a) != safe_component(b)


def _fs_name(name: str) -> str:
    """What a folder name on a Linux image can hold: no '/', no NUL, at most 255 bytes."""
    name = name.replace("/", "_").replace("\x00", "_") or "_"
    while len(os.fsencode(name)) > 255:
        name = name[:-1]
    return "_" if name in (".", "..", "") else name


def _user_dests(platform) -> list[str]:
    return [destination(s.dest, s.user) for s in platform.sources()
            if isinstance(s, FileSource) and s.user is not None]


def _check_dests(dests: list[str]) -> None:
    assert dests
    for dest in dests:
        parts = dest.split("/")
        assert parts[:2] == ["logs", "users"]
        for part in parts:
            assert_safe_component(part)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(HOSTILE, min_size=1, max_size=3, unique=True))
def test_every_platforms_user_enumeration_yields_safe_destinations(tmp_path_factory, names):
    base = tmp_path_factory.mktemp("users")
    # Linux: names from etc/passwd (no ':' or newline can be in a field)
    linux = base / "linux"
    (linux / "etc").mkdir(parents=True)
    (linux / "etc/os-release").write_text(UBUNTU_2204)
    rows = []
    for i, name in enumerate(names):
        field = name.replace(":", "_").replace("\n", "_").replace("\r", "_") or "_"
        rows.append(f"{field}:x:{1000 + i}:{1000 + i}::/home/u{i}:/bin/sh")
        (linux / f"home/u{i}").mkdir(parents=True)
    (linux / "etc/passwd").write_text("\n".join(rows) + "\n")
    _check_dests(_user_dests(Linux(linux, live=False)))
    # macOS and Windows: profile folder names
    for family, folder, cls in (("macos", "Users", MacOS), ("windows", "Users", Windows)):
        top = base / family / folder
        top.mkdir(parents=True)
        for name in names:
            (top / _fs_name(name)).mkdir(exist_ok=True)
        dests = _user_dests(cls(base / family, live=False))
        if any(_fs_name(n) not in ("Shared", "Public", "Default", "All Users", "Default User")
               and not _fs_name(n).startswith(".") for n in names):
            _check_dests(dests)
        for dest in dests:
            for part in dest.split("/"):
                assert_safe_component(part)


# ---------------------------------------------------------------------- what an attack run found


def gather_image(root: Path, tmp_path: Path, sources, family="linux", never=(), limits=None,
                 platform=None):
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    platform = platform or TreePlatform(root, sources, never=never, family=family)
    arts = Gatherer(platform, staging, Redactor(), limits or Limits()).run(platform.sources())
    return arts, staging


def staged_text(staging: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in staging.rglob("*") if p.is_file())


def folder(pattern="/var/log/jumpcloud") -> FileSource:
    return FileSource(pattern, "logs/jc", "agent-logs", recursive=True)


def test_a_long_chain_of_links_is_refused_not_a_crash(tmp_path):
    logs = tmp_path / "root/var/log/jumpcloud"
    logs.mkdir(parents=True)
    (logs / "zz-real.log").write_text("2026-11-20 10:00:00 real\n")
    for i in range(1200):
        os.symlink(f"l{i + 1:04d}" if i < 1199 else "zz-real.log", logs / f"l{i:04d}")
    arts, _ = gather_image(tmp_path / "root", tmp_path, [folder()])
    by_source = {a.source: a for a in arts}
    assert [a.status for a in arts].count("collected") == 1          # the file, once
    assert "more than 40 links" in by_source["/var/log/jumpcloud/l0000"].reason


def test_names_that_would_collide_with_folders_never_break_the_run(tmp_path):
    logs = tmp_path / "root/var/log/jumpcloud"
    (logs / "old").mkdir(parents=True)
    (logs / "old/inner.log").write_text("inner\n")
    long_folder = "L" * 200
    (logs / long_folder).mkdir()
    (logs / long_folder / "in-long.log").write_text("in long\n")
    for name in (".gz", "...gz", "old.gz", safe_component(long_folder), "X", "x.GZ"):
        with gzip.open(logs / name, "wb") if name.lower().endswith(".gz") else open(logs / name, "wb") as fh:
            fh.write(f"2026-11-20 10:00:00 {name}\n".encode())
    (logs / "x").mkdir()
    (logs / "x/y.log").write_text("y\n")
    arts, staging = gather_image(tmp_path / "root", tmp_path, [folder()])
    collected = [a for a in arts if a.status == "collected"]
    assert len(collected) == 9 and len({a.name.casefold() for a in collected}) == 9
    for a in collected:
        assert (staging / a.name).is_file()


def test_names_too_long_in_bytes_or_paths_too_deep_in_bytes_are_shortened(tmp_path):
    logs = tmp_path / "root/var/log/jumpcloud"
    logs.mkdir(parents=True)
    _make_chain(logs, "用" * 85, 18, "bottom.log")   # 255 bytes each: legal, but 4.6 KB in all
    (logs / ("界" * 76 + "\x01" * 14 + ".log")).write_text("2026-11-20 10:00:00 long\n")
    try:
        arts, staging = gather_image(tmp_path / "root", tmp_path, [folder()])
        collected = [a for a in arts if a.status == "collected"]
        assert len(collected) == 2
        for a in collected:
            assert len(a.name.encode()) <= 1000
            assert all(len(p.encode()) <= MAX_COMPONENT for p in a.name.split("/"))
            assert (staging / a.name).is_file()
    finally:
        _remove_chain(logs, "用" * 85)


def test_a_nul_in_a_never_collect_path_from_jcagent_conf_is_not_a_crash(tmp_path):
    (tmp_path / "root/var/log").mkdir(parents=True)
    (tmp_path / "root/var/log/jcagent.log").write_text("2026-11-20 10:00:00 up\n")
    arts, _ = gather_image(tmp_path / "root", tmp_path,
                           [FileSource("/var/log/jcagent.log", "logs", "agent-logs")],
                           never=["/opt/jc/client\x00.key"])
    assert [a.status for a in arts] == ["collected"]


def test_a_source_folder_linked_out_of_its_parent_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/shadow").write_text(SHADOW_MARKER + "\n")
    (root / "var/log").mkdir(parents=True)
    os.symlink("../../etc", root / "var/log/jumpcloud")
    arts, staging = gather_image(root, tmp_path, [folder()])
    assert [a.status for a in arts] == ["skipped"] and "outside /var/log" in arts[0].reason
    assert SHADOW_MARKER not in staged_text(staging)


def test_never_collect_paths_resolve_inside_the_image_through_absolute_links(tmp_path):
    root = tmp_path / "root"
    logs = root / "var/log/jumpcloud"
    logs.mkdir(parents=True)
    (logs / "agent-identity").write_text("NEVER-COLLECT-KEY-MATERIAL\n")
    (root / "opt/jc").mkdir(parents=True)
    os.symlink("/var/log/jumpcloud", root / "opt/jc/certs")        # absolute: means the image's
    arts, staging = gather_image(root, tmp_path, [folder()], never=["/opt/jc/certs/agent-identity"])
    assert arts[0].status == "skipped" and "never collected" in arts[0].reason
    assert "NEVER-COLLECT" not in staged_text(staging)


def test_a_hard_linked_file_in_a_log_folder_is_not_read(tmp_path):
    root = tmp_path / "root"
    (root / "etc/ssl/private").mkdir(parents=True)
    key = root / "etc/ssl/private/server.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n")
    (root / "var/log").mkdir(parents=True)
    os.link(key, root / "var/log/jcagent.log.7")
    arts, staging = gather_image(root, tmp_path, [FileSource("/var/log/jcagent.log*", "logs", "agent-logs")])
    assert arts[0].status == "skipped" and "hard-linked" in arts[0].reason
    assert "MIIEvQ" not in staged_text(staging)


def test_windows_never_collect_paths_match_ignoring_case(tmp_path):
    root = tmp_path / "root"
    (root / "Windows/Temp").mkdir(parents=True)
    (root / "Windows/Temp/jcagent.log.identity").write_text("NEVER-COLLECT-KEY-MATERIAL\n")
    source = FileSource(r"C:\Windows\Temp\jcagent.log.*", "logs/agent", "agent-logs")
    arts, staging = gather_image(root, tmp_path, [source], family="windows",
                                 never=[r"C:\WINDOWS\Temp\JCAgent.log.identity"])
    assert arts[0].status == "skipped" and "never collected" in arts[0].reason
    assert "NEVER-COLLECT" not in staged_text(staging)


@pytest.mark.timeout(60)
def test_a_gzip_padded_with_a_sparse_terabyte_of_zeros_ends_quickly(tmp_path):
    root = tmp_path / "root"
    (root / "var/log").mkdir(parents=True)
    with open(root / "var/log/jcagent.log.3.gz", "wb") as fh:
        fh.write(gzip.compress(b"2026-11-20 10:00:00 hi\n"))
        fh.truncate(fh.tell() + (1 << 40))
    arts, staging = gather_image(root, tmp_path, [FileSource("/var/log/jcagent.log*", "logs", "agent-logs")],
                                 limits=Limits(max_file_size=64 * 1024))
    art = arts[0]
    assert art.status == "collected" and art.name == "logs/jcagent.log.3"
    assert any("compressed bytes read" in t for t in art.truncation)
    assert (staging / art.name).read_text() == "2026-11-20 10:00:00 hi\n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("planted", ["etc/passwd", "etc/os-release"])
def test_fact_files_that_are_fifos_do_not_hang_the_run(tmp_path, planted):
    root = image(tmp_path, {})
    (root / planted).unlink()
    os.mkfifo(root / planted)
    r, review = collect_review(tmp_path, root)
    assert r.returncode in (0, 3), r.stderr
    assert one_json(r)["bundle_id"]


def test_a_planted_device_is_never_opened(tmp_path, monkeypatch):
    import collector.gather as gather_mod
    root = tmp_path / "root"
    (root / "var/log/jumpcloud").mkdir(parents=True)
    os.mkfifo(root / "var/log/jumpcloud/fifo.log")
    (root / "var/log/jumpcloud/ok.log").write_text("ok\n")
    opened = []
    real_open = os.open

    def spy(path, flags, *args, **kw):
        opened.append(os.fsdecode(path))
        return real_open(path, flags, *args, **kw)
    monkeypatch.setattr(gather_mod.os, "open", spy)
    arts, _ = gather_image(root, tmp_path, [folder()])
    by_source = {a.source.rsplit("/", 1)[1]: a for a in arts}
    assert by_source["fifo.log"].status == "skipped" and "FIFO" in by_source["fifo.log"].reason
    assert not any(p.endswith("fifo.log") for p in opened) and any(p.endswith("ok.log") for p in opened)


def test_a_crowded_folder_does_not_hide_matching_logs(tmp_path):
    logs = tmp_path / "root/var/log"
    logs.mkdir(parents=True)
    fd = os.open(logs, os.O_RDONLY)
    try:
        for i in range(20050):
            os.close(os.open(f"noise-{i:05d}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    (logs / "jcagent.log.2").write_text("2026-11-20 10:00:00 rotation\n")
    arts, _ = gather_image(tmp_path / "root", tmp_path, [FileSource("/var/log/jcagent.log*", "logs", "agent-logs")])
    assert [(a.source, a.status) for a in arts] == [("/var/log/jcagent.log.2", "collected")]


def test_summary_txt_shows_hostile_names_escaped_never_as_lines_or_escapes():
    from collector.summary import render_text
    evil = "/var/log/jcagent.log.9\x1b[2J\x1b]0;owned\x07\nLifecycle: OK (forged line)\nX.gz"
    text = render_text({"bundle_id": "JCD-0000-0000-0000", "created": "2026-12-01",
                        "collection": {"failed": [{"collector": "agent-logs", "source": evil,
                                                   "reason": "damaged\u202e"}]}},
                       {"description": "line one\nline two\x1b[31m"})
    assert "\x1b" not in text and "\u202e" not in text
    assert not any(line.startswith("Lifecycle: OK") for line in text.splitlines())
    assert "line two\\x1b[31m" in text                   # a multi-line description stays readable


def test_a_backslash_in_a_macos_home_name_does_not_climb_out_of_users(tmp_path):
    root = tmp_path / "mac"
    (root / "Users" / "eve\\..\\..\\srv\\other").mkdir(parents=True)
    logs = root / "srv/other/Library/Logs/JumpCloud"
    logs.mkdir(parents=True)
    (logs / "jc-user-agent.log").write_text("SOMEONE-ELSES-LOG\n")
    platform = MacOS(root, live=False)
    sources = [s for s in platform.sources() if isinstance(s, FileSource) and s.user is not None]
    assert sources and all(s.within.startswith("/Users/eve\\") for s in sources)
    staging = tmp_path / "staging"
    staging.mkdir()
    Gatherer(platform, staging, Redactor(), Limits()).run(sources)
    assert "SOMEONE-ELSES-LOG" not in staged_text(staging)


@pytest.mark.parametrize("name, expected", [("CON .txt", "%43ON .txt"), ("aux  .log", "%61ux  .log"),
                                            ("e\u0301.log", "e%CC%81.log"), ("\u00e9.log", "\u00e9.log"),
                                            ("a~b", "a%7Eb")])
def test_names_windows_or_macos_would_mangle_are_encoded(name, expected):
    assert safe_component(name) == expected


# ---------------------------------------------------------------------- a second attack round


def test_links_that_climb_out_of_the_image_through_an_overlong_path_are_refused(tmp_path):
    """Two hops of links under 17 folders of 251 bytes: past PATH_MAX a component cannot be
    checked, and the ``..`` after it must never be walked (it climbed onto this machine)."""
    host_secret = tmp_path / "HOST_SECRET.txt"
    host_secret.write_text("HOST-MACHINE-SECRET\n")
    root = tmp_path / "img"
    log = root / "var/log"
    log.mkdir(parents=True)
    names = [f"D{i:02d}" + "d" * 247 for i in range(17)]
    fd = os.open(log, os.O_RDONLY)
    try:
        for name in names:                                     # relative mkdirs: past PATH_MAX
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    os.symlink("/".join(names[:9]) + "/l2", log / "jcagent.log.9")
    fd = os.open(log, os.O_RDONLY)
    try:
        for name in names[:9]:
            nxt = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        up = "../" * (len(root.parts) + 30)
        os.symlink("/".join(names[9:]) + "/" + up + str(host_secret).lstrip("/"), "l2", dir_fd=fd)
    finally:
        os.close(fd)
    try:
        arts, staging = gather_image(root, tmp_path, [FileSource("/var/log/jcagent.log*", "logs", "agent-logs")])
        assert "HOST-MACHINE-SECRET" not in staged_text(staging)
        assert [a.status for a in arts if a.source == "/var/log/jcagent.log.9"] == ["skipped"]
    finally:
        import shutil
        shutil.rmtree(log / names[0], ignore_errors=True)


def test_resolving_never_climbs_out_of_a_missing_folder():
    from platforms.base import resolve_inside
    with pytest.raises(OSError):
        resolve_inside("/", ("no-such-folder-here", "..", "..", "etc", "shadow"))
    assert resolve_inside("/", ("no-such-folder-here", "x")) == ("no-such-folder-here", "x")


@pytest.mark.parametrize("family", ["linux", "macos"])
def test_fact_files_never_follow_an_image_link_onto_this_machine(tmp_path, family):
    host_secret = tmp_path / "HOST_SECRET.txt"
    host_secret.write_text("HOST-MACHINE-SECRET\n")
    from tests.hosts import macos_host
    root = (linux_host if family == "linux" else macos_host)(tmp_path / "img")
    version = root / "opt/jc/version.txt"
    version.unlink()
    os.symlink(str(host_secret), version)                    # absolute: means the image's own path
    loop = root / str(host_secret).lstrip("/")
    loop.parent.mkdir(parents=True)
    os.symlink(loop.name, loop)                              # and inside the image: a loop
    platform = (Linux if family == "linux" else MacOS)(root, live=False)
    assert "HOST-MACHINE-SECRET" not in platform.agent_info().version


def test_a_hive_claiming_billions_of_subkeys_answers_at_once(tmp_path):
    import struct
    import time
    from platforms.winregistry import RegfHive

    def cell(payload):
        size = 4 + len(payload)
        size += (-size) % 8
        return struct.pack("<i", -size) + payload + b"\0" * (size - 4 - len(payload))

    def nk(name, count=0, subkeys=0xFFFFFFFF):
        b = bytearray(76)
        b[0:2] = b"nk"
        struct.pack_into("<H", b, 2, 0x24)
        struct.pack_into("<I", b, 20, count)
        struct.pack_into("<I", b, 28, subkeys)
        struct.pack_into("<II", b, 36, 0, 0xFFFFFFFF)
        struct.pack_into("<II", b, 44, 0xFFFFFFFF, 0xFFFFFFFF)
        struct.pack_into("<H", b, 72, len(name))
        return bytes(b) + name.encode("latin-1")

    n = 65535
    root_off = 0x20
    child_off = root_off + len(cell(nk("ROOT")))
    child = cell(nk("zzz"))
    li_off = child_off + len(child)
    li = cell(b"li" + struct.pack("<H", n) + struct.pack("<I", child_off) * n)
    ri_off = li_off + len(li)
    ri = cell(b"ri" + struct.pack("<H", n) + struct.pack("<I", li_off) * n)
    bins = bytearray(b"hbin" + b"\0" * 28 + cell(nk("ROOT", 0xFFFFFFFF, ri_off)) + child + li + ri)
    bins += b"\0" * ((-len(bins)) % 4096)
    struct.pack_into("<I", bins, 8, len(bins))
    base = bytearray(4096)
    base[0:4] = b"regf"
    struct.pack_into("<II", base, 4, 1, 1)
    struct.pack_into("<I", base, 24, 5)
    struct.pack_into("<II", base, 36, root_off, len(bins))
    check = 0
    for (word,) in struct.iter_unpack("<I", bytes(base[:508])):
        check ^= word
    struct.pack_into("<I", base, 508, check)
    path = tmp_path / "SOFTWARE"
    path.write_bytes(bytes(base) + bytes(bins))
    started = time.monotonic()
    with RegfHive(path) as hive:
        assert not hive.has_key(["Microsoft", "Windows NT"])
        assert len(hive.subkey_names([])) <= 1 << 20
    assert time.monotonic() - started < 20


@pytest.mark.timeout(60)
def test_a_gzip_of_many_empty_members_costs_linear_time(tmp_path):
    import time
    root = tmp_path / "root"
    (root / "var/log").mkdir(parents=True)
    (root / "var/log/jcagent.log.4.gz").write_bytes(gzip.compress(b"") * 800_000)    # 16 MB
    started = time.monotonic()
    arts, _ = gather_image(root, tmp_path, [FileSource("/var/log/jcagent.log*", "logs", "agent-logs")])
    assert time.monotonic() - started < 15
    assert any("10000 gzip members" in t for t in arts[0].truncation)
