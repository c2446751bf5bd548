"""`jcdiag open`, `inspect`, `upload` and `fetch` on crafted hostile bundles, through the CLI.

Every refusal must be: exit 1, one line on stderr (or exactly one JSON object with an
`error_kind` on stdout with --json), no traceback, and nothing left behind: the folder
listing of the whole test folder (the bundle's folder and the current folder the
command ran in) is the same after as before.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector import cli, unpack
from collector.envelope import keygen, load_recipient_file, new_secret
from collector.ids import new_bundle_id
from tests import hostile
from tests.hostile import PASSWORD


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    return keygen(folder / "support"), keygen(folder / "other")


@pytest.fixture
def place(tmp_path):
    """(bundle folder, current folder, password file) under one tmp folder."""
    src, cwd = tmp_path / "in", tmp_path / "cwd"
    src.mkdir()
    cwd.mkdir()
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    return src, cwd, pw


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def jcdiag(cwd: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def refused(cwd: Path, root: Path, kind: str, *args) -> dict:
    """Run the command twice (people, --json); both refuse with ``kind`` and leave ``root`` as it was."""
    before = tree(root)
    human = jcdiag(cwd, *args)
    assert human.returncode == 1, (human.stdout, human.stderr)
    lines = human.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and human.stdout == "", human.stderr
    machine = jcdiag(cwd, *args, "--json")
    assert machine.returncode == 1 and "Traceback" not in machine.stderr, machine.stderr
    out = machine.stdout.strip().splitlines()
    assert len(out) == 1, machine.stdout
    obj = json.loads(out[0])
    assert obj["error_kind"] == kind, obj
    assert obj["exit_code"] == 1 and "\n" not in obj["error"]
    assert tree(root) == before
    return obj


def set_path(header: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = header
    for part in parents:
        node = node[part]
    node[last] = value


# ----------------------------------------------------------------------------- headers

HEADER_CASES = [
    ("bundle_id", "../x", "header_invalid"),
    ("bundle_id", "/tmp/jcdiag-hostile-abs", "header_invalid"),
    ("bundle_id", ["JCD-AAAA-BBBB-CCCC"], "header_invalid"),
    ("bundle_id", "JCD-AAAA-BBBB-CCCC\n", "header_invalid"),
    ("bundle_id", "jcd-aaaa-bbbb-cccc", "header_invalid"),          # never folded into a valid ID
    ("tool", "x", "header_invalid"),
    ("payload.size", "10", "header_invalid"),
    ("payload.size", True, "header_invalid"),
    ("payload.sha256", "AB" * 32, "header_invalid"),
    ("recipients", {"key_id": "x"}, "header_invalid"),
    ("case_id", "42\x1b]0;pwned\x07", "header_invalid"),
    ("format", "jcdiag-bundle/2", "unsupported_format"),
]


@pytest.mark.parametrize("field,value,kind", HEADER_CASES, ids=[f"{f}={v!r}" for f, v, _ in HEADER_CASES])
def test_hostile_header_fields_are_refused_by_open_and_inspect(place, field, value, kind):
    src, cwd, pw = place
    b = hostile.simple(src, edit=lambda h: set_path(h, field, value))
    obj = refused(cwd, src.parent, kind, "open", b, "--password-file", pw)
    assert obj.get("field", field) == field
    refused(cwd, src.parent, kind, "inspect", b)
    assert not Path("/tmp/jcdiag-hostile-abs").exists() and not (src.parent / "x").exists()


def _raw_header_bundle(src: Path, text: bytes) -> Path:
    p = hostile.payload(src / "p", {"SUMMARY.txt": b"x"})
    return hostile.bundle(src / "raw.7z", text, p)


def test_huge_header_is_refused_before_it_is_read(place):
    src, cwd, pw = place
    header = hostile.header_for(hostile.payload(src / "p0", {"a": b"x"}), padding="x" * (1024 * 1024 + 10))
    b = _raw_header_bundle(src, json.dumps(header).encode())
    obj = refused(cwd, src.parent, "header_invalid", "open", b, "--password-file", pw)
    assert "1048576" in obj["error"]


def test_deeply_nested_header_is_refused_without_a_traceback(place):
    src, cwd, pw = place
    depth = 200_000
    text = b'{"format": "jcdiag-bundle/1", "x": ' + b"[" * depth + b"]" * depth + b"}"
    b = _raw_header_bundle(src, text)
    obj = refused(cwd, src.parent, "header_invalid", "open", b, "--password-file", pw)
    assert "nested deeper" in obj["error"]
    refused(cwd, src.parent, "header_invalid", "inspect", b)


def test_header_with_a_key_twice_is_refused(place):
    src, cwd, pw = place
    p = hostile.payload(src / "p0", {"a": b"x"})
    good = json.dumps(hostile.header_for(p))
    twice = good[:-1] + ', "bundle_id": "../x"}'
    b = _raw_header_bundle(src, twice.encode())
    obj = refused(cwd, src.parent, "header_invalid", "open", b, "--password-file", pw)
    assert "twice" in obj["error"]


# ----------------------------------------------------------------------------- outer archive


def test_not_a_7z_file(place):
    src, cwd, pw = place
    junk = src / "junk.7z"
    junk.write_bytes(b"hello, I am not a bundle\n" * 100)
    refused(cwd, src.parent, "not_a_bundle", "open", junk, "--password-file", pw)
    refused(cwd, src.parent, "not_a_bundle", "inspect", junk)


@pytest.mark.parametrize("extra", [(("notes.txt", b"hi"),), (("bundle.json", b"{}"),),
                                   (("../evil", b"x"),)], ids=["extra", "duplicate", "dotdot"])
def test_outer_archive_with_other_entries_is_refused(place, extra):
    src, cwd, pw = place
    p = hostile.payload(src / "p", {"SUMMARY.txt": b"x"})
    b = hostile.bundle(src / "b.7z", hostile.header_for(p), p, extra=extra)
    refused(cwd, src.parent, "not_a_bundle", "open", b, "--password-file", pw)


def test_flipped_payload_byte_and_truncation_are_told_apart_from_a_wrong_password(place):
    src, cwd, pw = place
    p = hostile.payload(src / "p", {"SUMMARY.txt": b"s" * 5000})
    b = hostile.bundle(src / "b.7z", hostile.header_for(p), p)
    data = bytearray(b.read_bytes())
    at = bytes(data).find(p.read_bytes()) + p.stat().st_size // 2
    data[at] ^= 0x01
    flipped = src / "flipped.7z"
    flipped.write_bytes(bytes(data))
    obj = refused(cwd, src.parent, "payload_mismatch", "open", flipped, "--password-file", pw)
    assert "does not match its header" in obj["error"]
    short = src / "short.7z"
    short.write_bytes(b.read_bytes()[: b.stat().st_size - 40])
    refused(cwd, src.parent, "not_a_bundle", "open", short, "--password-file", pw)
    lying = hostile.bundle(src / "lying.7z", hostile.header_for(p, payload={
        **hostile.header_for(p)["payload"], "size": p.stat().st_size + 1}), p)
    refused(cwd, src.parent, "payload_mismatch", "open", lying, "--password-file", pw)


# ----------------------------------------------------------------------------- payload entries


def _payload_bundle(src: Path, p: Path) -> Path:
    return hostile.bundle(src / "b.7z", hostile.header_for(p), p)


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "logs/./x", "a\nb", "C:evil", "x\u202eexe.txt"])
def test_unsafe_entry_names_are_refused(place, name):
    src, cwd, pw = place
    p = hostile.payload(src / "p", {"SUMMARY.txt": b"x", name: b"planted"})
    obj = refused(cwd, src.parent, "unsafe_entry", "open", _payload_bundle(src, p), "--password-file", pw)
    assert "nothing was extracted" in obj["error"]
    assert not (src.parent / "evil").exists()


def test_absolute_entry_is_refused(place):
    src, cwd, pw = place
    target = str(src.parent / "abs")
    placeholder = "X" + target[1:]
    p = hostile.renamed_payload(src / "p", placeholder, target)
    refused(cwd, src.parent, "unsafe_entry", "open", _payload_bundle(src, p), "--password-file", pw)
    assert not Path(target).exists()


def test_symlink_entry_is_refused(place):
    src, cwd, pw = place
    p = hostile.symlink_payload(src / "p", "/etc/passwd")
    refused(cwd, src.parent, "unsafe_entry", "open", _payload_bundle(src, p), "--password-file", pw)


@pytest.mark.parametrize("mode", [stat.S_IFCHR, stat.S_IFIFO, stat.S_IFBLK], ids=["chr", "fifo", "blk"])
def test_device_and_fifo_entries_are_refused(place, mode):
    src, cwd, pw = place
    p = hostile.special_payload(src / "p", mode)
    refused(cwd, src.parent, "unsafe_entry", "open", _payload_bundle(src, p), "--password-file", pw)


def test_entry_under_a_file_of_the_same_name_is_refused(place):
    src, cwd, pw = place
    p = hostile.payload(src / "p", {"a": b"file", "a/b": b"under it"})
    refused(cwd, src.parent, "unsafe_entry", "open", _payload_bundle(src, p), "--password-file", pw)


def test_bomb_is_refused_from_its_declared_sizes(place):
    src, cwd, pw = place
    p = hostile.sparse_payload(src / "p", "zeros.log", 64 * 1024 * 1024)
    assert p.stat().st_size < 64 * 1024                       # a few KiB expanding to 64 MiB
    obj = refused(cwd, src.parent, "extract_cap_exceeded", "open", _payload_bundle(src, p),
                  "--password-file", pw, "--max-extract-size", "1M")
    assert obj["declared"] == 64 * 1024 * 1024 and obj["limit"] == 1024 * 1024


# ----------------------------------------------------------------------------- credentials


def _sealed_bundle(src: Path, pub: Path) -> Path:
    secret = new_secret()
    p = hostile.payload(src / "p", {"SUMMARY.txt": b"summary\n"}, password=secret)
    header = hostile.header_for(p, recipients=[load_recipient_file(pub).seal(secret)], password_protected=False)
    return hostile.bundle(src / "sealed.7z", header, p)


def test_wrong_password_leaves_no_folder_and_says_wrong_password(place):
    src, cwd, _ = place
    bad = src.parent / "badpw"
    bad.write_text("not it\n")
    b = hostile.simple(src)
    obj = refused(cwd, src.parent, "wrong_password", "open", b, "--password-file", bad, "--to", cwd / "new")
    assert "wrong password" in obj["error"]
    empty = cwd / "empty"
    empty.mkdir()
    refused(cwd, src.parent, "wrong_password", "open", b, "--password-file", bad, "--to", empty)
    assert empty.is_dir() and not any(empty.iterdir())      # an existing empty --to is left as it was


def test_key_and_password_mismatches_say_what_to_use(place, keys):
    src, cwd, pw = place
    (key, pub), (other_key, _) = keys
    sealed = _sealed_bundle(src, pub)
    protected = hostile.simple(src)
    refused(cwd, src.parent, "needs_key", "open", sealed, "--password-file", pw)
    refused(cwd, src.parent, "needs_password", "open", protected, "--key", key)
    obj = refused(cwd, src.parent, "sealed_to_other_keys", "open", sealed, "--key", other_key)
    mine = load_recipient_file(keys[1][1]).key_id
    theirs = load_recipient_file(pub).key_id
    assert obj["your_key_id"] == mine and obj["bundle_key_ids"] == [theirs]
    assert mine in obj["error"] and theirs in obj["error"]


def test_non_empty_target_is_refused(place):
    src, cwd, pw = place
    (cwd / "full").mkdir()
    (cwd / "full" / "keep.txt").write_text("mine")
    refused(cwd, src.parent, "target_not_empty", "open", hostile.simple(src), "--password-file", pw,
            "--to", cwd / "full")
    assert (cwd / "full" / "keep.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- success


def test_default_target_is_the_validated_id_in_the_current_folder(place, keys):
    src, cwd, _ = place
    (key, pub), _ = keys
    b = _sealed_bundle(src, pub)
    r = jcdiag(cwd, "open", b, "--key", key, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    bundle_id = out["bundle_id"]
    assert out["to"] == str(cwd / bundle_id) and out["files"] == 1 and out["bytes"] == len(b"summary\n")
    assert os.listdir(cwd) == [bundle_id]                     # no temporary folder, no payload copy
    assert stat.S_IMODE((cwd / bundle_id).stat().st_mode) == 0o700
    assert (cwd / bundle_id / "SUMMARY.txt").read_bytes() == b"summary\n"
    assert stat.S_IMODE((cwd / bundle_id / "SUMMARY.txt").stat().st_mode) == 0o600


def test_existing_empty_target_is_replaced(place):
    src, cwd, pw = place
    (cwd / "here").mkdir()
    r = jcdiag(cwd, "open", hostile.simple(src), "--password-file", pw, "--to", "here")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(cwd / "here")) == ["SUMMARY.txt", "logs"] and os.listdir(cwd) == ["here"]


# ----------------------------------------------------------------------------- in-process faults


def _invoke(monkeypatch, cwd: Path, *args):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(cli.main, ["open", *map(str, args), "--json"])


def test_a_payload_writing_more_than_it_declares_is_stopped_while_writing(place, monkeypatch):
    """The listing's sizes can lie: the writer counts what it really writes."""
    src, cwd, pw = place
    b = _payload_bundle(src, hostile.sparse_payload(src / "p", "zeros.log", 8 * 1024 * 1024))
    real_plan = unpack.plan
    monkeypatch.setattr(unpack, "plan", lambda archive, max_size: real_plan(archive, 2 ** 62))
    before = tree(src.parent)
    r = _invoke(monkeypatch, cwd, b, "--password-file", pw, "--max-extract-size", "1M")
    assert r.exit_code == 1 and json.loads(r.output)["error_kind"] == "extract_cap_exceeded", r.output
    assert tree(src.parent) == before


def test_too_many_entries_are_refused(place, monkeypatch):
    src, cwd, pw = place
    monkeypatch.setattr(unpack, "MAX_ENTRIES", 3)
    b = _payload_bundle(src, hostile.payload(src / "p", {f"f{i}": b"x" for i in range(4)}))
    before = tree(src.parent)
    r = _invoke(monkeypatch, cwd, b, "--password-file", pw)
    assert r.exit_code == 1 and json.loads(r.output)["error_kind"] == "extract_cap_exceeded", r.output
    assert tree(src.parent) == before


def test_interrupt_while_extracting_leaves_nothing(place, monkeypatch):
    src, cwd, pw = place
    b = hostile.simple(src, files={"SUMMARY.txt": b"s" * 1000, "logs/a.log": b"a" * 1000})
    real_write = unpack._CappedFile.write
    calls = []

    def interrupted(self, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real_write(self, data)
    monkeypatch.setattr(unpack._CappedFile, "write", interrupted)
    before = tree(src.parent)
    monkeypatch.chdir(cwd)
    r = CliRunner().invoke(cli.main, ["open", str(b), "--password-file", str(pw)])
    assert r.exit_code == 130 and len(calls) > 1
    assert tree(src.parent) == before


# ----------------------------------------------------------------------------- upload


def test_upload_refuses_a_hostile_header_before_sending(place):
    src, cwd, _ = place
    b = hostile.simple(src, edit=lambda h: set_path(h, "bundle_id", "../x"))
    token = src.parent / "token"
    token.write_text("t\n")
    env_spool = {"JCDIAG_SPOOL": str(src.parent / "spool")}
    before = tree(src.parent)
    r = subprocess.run([sys.executable, "-m", "collector", "upload", str(b), "--server", "http://127.0.0.1:9",
                        "--token-file", str(token), "--json"], cwd=cwd, capture_output=True, text=True,
                       timeout=60, env={**os.environ, **env_spool})
    assert r.returncode == 1 and json.loads(r.stdout)["error_kind"] == "header_invalid", r.stdout + r.stderr
    assert tree(src.parent) == before


def test_bundle_ids_must_be_exact():
    from collector.ids import is_bundle_id
    good = new_bundle_id()
    assert is_bundle_id(good)
    assert not any(is_bundle_id(x) for x in (good + "\n", good.lower(), " " + good, None, [good], good[:-1]))


# ----------------------------------------------------------------------------- intake and fetch


def test_intake_refuses_a_hostile_header_and_fetch_checks_the_record(tmp_path):
    """A real intake on 127.0.0.1: the upload of a bundle whose header breaks the schema is
    refused with 422 and nothing is published; a record whose values are not what fetch
    expects (a tampered store) is refused in one line, with nothing written."""
    import hashlib

    from collector.upload import UploadError
    from tests.transfer_kit import Intake, raw_upload

    good_id, bad_id = new_bundle_id(), new_bundle_id()
    bad = hostile.simple(tmp_path / "in", name="bad.7z",
                         edit=lambda h: (set_path(h, "tool", "x"), set_path(h, "bundle_id", bad_id)))
    good = hostile.simple(tmp_path / "in", name="good.7z", edit=lambda h: set_path(h, "bundle_id", good_id))
    with Intake(tmp_path / "data") as service:
        token = service.token("--case", "42")
        data = bad.read_bytes()
        with pytest.raises(UploadError) as err:
            raw_upload(service.url, token, data, {"bundle_id": bad_id, "case_id": "42",
                                                  "sha256": hashlib.sha256(data).hexdigest()})
        assert err.value.status == 422 and "invalid header" in str(err.value)
        assert not (service.data / "store" / "bundles" / bad_id).exists()
        data = good.read_bytes()
        raw_upload(service.url, token, data, {"bundle_id": good_id, "case_id": "42",
                                              "sha256": hashlib.sha256(data).hexdigest()})
        record_file = next((service.data / "store" / "bundles" / good_id).rglob("record.json"))
        record = json.loads(record_file.read_text())
        engineer = service.token_file(tmp_path / "e", "--engineer")
        got = tmp_path / "got"
        got.mkdir()
        for tampered in ({"size": "abc"}, {"sha256": "../../etc"}, {"bundle_id": bad_id}, {"size": True}):
            record_file.write_text(json.dumps({**record, **tampered}))
            r = subprocess.run([sys.executable, "-m", "collector", "fetch", good_id, "--server", service.url,
                                "--token-file", str(engineer), "--to", str(got), "--json"],
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
            assert "not usable" in json.loads(r.stdout)["error"] and os.listdir(got) == []
        record_file.write_text(json.dumps(record))
        r = subprocess.run([sys.executable, "-m", "collector", "fetch", "../x", "--server", service.url,
                            "--token-file", str(engineer), "--to", str(got)],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and os.listdir(got) == []
        r = subprocess.run([sys.executable, "-m", "collector", "fetch", good_id, "--server", service.url,
                            "--token-file", str(engineer), "--to", str(got), "--json"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0 and os.listdir(got) == [f"{good_id}.7z"], r.stderr


# ----------------------------------------------------------------------------- a second attack round


def test_a_compressed_payload_entry_is_refused_before_anything_is_copied(place):
    """A 2 GiB payload of zeros, LZMA2-compressed inside the outer archive, declared honestly:
    refused from the header's size against the cap, without writing it next to the target."""
    import hashlib
    from tests.raw7z import solid_archive
    src, cwd, pw = place
    size, chunk = 64 << 20, b"\0" * (1 << 20)
    (src / "empty").write_bytes(b"")
    header = hostile.header_for(src / "empty")
    header["payload"]["size"] = size
    header["payload"]["sha256"] = hashlib.sha256(chunk * 64).hexdigest()
    out = src / "b.7z"
    solid_archive(out, [("bundle.json", [json.dumps(header).encode()]),
                        ("payload.7z", (chunk for _ in range(64)))])
    assert out.stat().st_size < 1 << 20
    refused(cwd, src.parent, "extract_cap_exceeded", "open", out, "--password-file", pw,
            "--max-extract-size", "1M")
    obj = refused(cwd, src.parent, "not_a_bundle", "open", out, "--password-file", pw)
    assert "compressed inside the bundle" in obj["error"]


@pytest.mark.timeout(60)
def test_a_tiny_header_listing_millions_of_entries_is_refused_quickly(place):
    from tests.raw7z import archive, empty_files_header
    src, cwd, _ = place
    bomb = src / "bomb.7z"
    bomb.write_bytes(archive(b"", empty_files_header(["x"] * (1 << 21))))
    assert bomb.stat().st_size < 64 * 1024
    refused(cwd, src.parent, "not_a_bundle", "inspect", bomb)


def test_a_folder_entry_carrying_data_is_refused(place):
    from tests.raw7z import solid_archive
    src, cwd, pw = place
    p = src / "payload.7z"
    solid_archive(p, [("big", [b"\0" * (1 << 20)]), ("SUMMARY.txt", [b"ok\n"])], attributes=[0x10, 0x20])
    refused(cwd, src.parent, "unsafe_entry", "open", _payload_bundle(src, p), "--password-file", pw)


def test_a_readable_or_non_7z_payload_is_corrupt_not_a_wrong_password(place):
    from tests.raw7z import solid_archive
    src, cwd, pw = place
    p = src / "payload.7z"
    solid_archive(p, [("SUMMARY.txt", [b"ok\n"])])                 # a 7z anyone can read
    obj = refused(cwd, src.parent, "payload_corrupt", "open", _payload_bundle(src, p), "--password-file", pw)
    assert "not encrypted" in obj["error"]
    p.write_bytes(b"\0" * 4096)                                      # no 7z at all
    (src / "b.7z").unlink()
    obj = refused(cwd, src.parent, "payload_corrupt", "open", _payload_bundle(src, p), "--password-file", pw)
    assert "no 7z archive" in obj["error"]


@pytest.mark.parametrize("names", [("Log.txt", "log.txt"), ("caf\u00e9", "cafe\u0301")], ids=["case", "nfc"])
def test_names_equal_on_windows_or_macos_are_refused(place, names):
    src, cwd, pw = place
    p = hostile.payload(src / "p", {"SUMMARY.txt": b"x", names[0]: b"one", names[1]: b"two"})
    refused(cwd, src.parent, "unsafe_entry", "open", _payload_bundle(src, p), "--password-file", pw)
