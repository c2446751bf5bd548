"""Our 7z writer against the real ``7z`` binary and py7zr: what it writes, they must open.

Every archive here is listed, tested (``7z t``) and extracted by stock 7-Zip and by
py7zr, and the extracted bytes are compared with the inputs.
"""
from __future__ import annotations

import gzip
import lzma
import os
import random
import subprocess
import zlib
from pathlib import Path

import py7zr
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from collector import lzma2enc, sevenzip
from collector.sevenzip import (StreamingWriter, SevenZipWriteError, bit_vector, derive_key,
                                is_precompressed, number, write_archive)
from tests.opener import headers_are_encrypted

PASSWORD = "Pässwörd-43-chars_xxxxxxxxxxxxxxxxxxxxxxxxx"
SMALL_BLOCK = 64 << 10


def log_text(lines: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return b"".join(b"2026-11-%02d 10:%02d:%02d [INFO] heartbeat sent status=200 duration=%dms\n"
                    % (1 + i % 28, i % 60, rng.randrange(60), rng.randrange(3000)) for i in range(lines))


def run_7z(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["7z", *args], capture_output=True, text=True, check=check)


def slt(archive: Path, password: str | None) -> list[dict[str, str]]:
    """``7z l -slt`` as one dict per archived file."""
    out = run_7z("l", "-slt", f"-p{password or ''}", str(archive)).stdout
    body = out.split("----------\n", 1)[1]
    entries = []
    for block in body.strip().split("\n\n"):
        entries.append(dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line))
    return entries


def extract_7z(archive: Path, to: Path, password: str | None) -> Path:
    run_7z("x", "-y", f"-p{password or ''}", f"-o{to}", str(archive))
    return to


def extract_py7zr(archive: Path, to: Path, password: str | None) -> Path:
    with py7zr.SevenZipFile(archive, "r", password=password) as reader:
        reader.extractall(path=to)
    return to


def assert_same_tree(expected: dict[str, bytes], root: Path) -> None:
    found = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert found.keys() == expected.keys()
    for name, data in expected.items():
        assert found[name] == data, name


def make_files(folder: Path, contents: dict[str, bytes]) -> list[tuple[Path, str]]:
    pairs = []
    for index, (name, data) in enumerate(contents.items()):
        path = folder / f"src-{index}"
        path.write_bytes(data)
        pairs.append((path, name))
    return pairs


def check_everywhere(archive: Path, contents: dict[str, bytes], tmp: Path, password: str | None) -> None:
    """7z t, 7z x and py7zr all agree with the inputs."""
    tested = run_7z("t", f"-p{password or ''}", str(archive))
    assert "Everything is Ok" in tested.stdout
    assert_same_tree(contents, extract_7z(archive, tmp / "by-7z", password))
    assert_same_tree(contents, extract_py7zr(archive, tmp / "by-py7zr", password))


@pytest.fixture
def mixed(tmp_path):
    """Many small text files, an empty file, a big file of several blocks, a .gz,
    random bytes without a telling name, and non-ASCII names."""
    src = tmp_path / "src"
    src.mkdir()
    contents = {f"logs/small/{i:03d}.log": log_text(1 + i % 7, seed=i) for i in range(120)}
    contents["empty.txt"] = b""
    contents["logs/agent/jcagent.log"] = log_text(12000)              # ~ 10 blocks of 64 KiB
    contents["logs/agent/jcagent.log.1.gz"] = gzip.compress(log_text(3000, seed=9))
    contents["attachments/screen"] = random.Random(5).randbytes(100_000)
    contents["logs/ünïcödé/日本語 ログ.txt"] = "résumé ✓ 日本\n".encode()
    contents["SUMMARY.txt"] = b"summary first\n"
    return contents, make_files(src, contents)


def test_mixed_archive_opens_in_7z_and_py7zr(mixed, tmp_path):
    contents, files = mixed
    archive = tmp_path / "payload.7z"
    with StreamingWriter(archive, PASSWORD, block_size=SMALL_BLOCK) as writer:
        for path, name in files:
            writer.add_file(path, name)
    check_everywhere(archive, contents, tmp_path, PASSWORD)


def test_a_stored_archive_written_front_to_back_opens_everywhere(mixed, tmp_path):
    """write_stored (sizes and CRCs known first): bytes and files, an empty one, non-ASCII
    names; what it returns is the SHA-256 and size of what it wrote."""
    import hashlib
    contents, files = mixed
    stored = [sevenzip.StoredFile("header.json", 12, zlib.crc32(b'{"a": "b"}\n\n'), 10**18,
                                  data=b'{"a": "b"}\n\n')]
    contents = {"header.json": b'{"a": "b"}\n\n', **contents}
    for path, name in files:
        data = path.read_bytes()
        stored.append(sevenzip.StoredFile(name, len(data), zlib.crc32(data), path.stat().st_mtime_ns, 0o600,
                                          path=path))
    archive = tmp_path / "stored.7z"
    with open(archive, "wb") as fh:
        digest, size = sevenzip.write_stored(fh, stored)
    assert (digest, size) == (hashlib.sha256(archive.read_bytes()).hexdigest(), archive.stat().st_size)
    check_everywhere(archive, contents, tmp_path, None)
    entries = {e["Path"]: e for e in slt(archive, None)}
    assert all(e["Method"] == "Copy" for e in entries.values() if e["Size"] != "0")
    assert entries["logs/agent/jcagent.log"]["Attributes"].startswith("A -rw-------")


def test_a_stored_file_shorter_than_announced_is_refused(tmp_path):
    short = tmp_path / "short"
    short.write_bytes(b"12345")
    with open(tmp_path / "out.7z", "wb") as fh, pytest.raises(SevenZipWriteError, match="fewer"):
        sevenzip.write_stored(fh, [sevenzip.StoredFile("short", 9, 0, 0, path=short)])
    with open(tmp_path / "x.7z", "wb") as fh, pytest.raises(ValueError):
        sevenzip.write_stored(fh, [sevenzip.StoredFile("neither", 1, 0, 0)])      # no data, no path
    for bad in ("a\x00b", "\ud800", ""):                                       # names 7z cannot hold
        with open(tmp_path / "y.7z", "wb") as fh, pytest.raises(ValueError):
            sevenzip.write_stored(fh, [sevenzip.StoredFile(bad, 1, zlib.crc32(b"a"), 0, data=b"a")])


def test_a_stored_archive_hash_is_of_the_bytes_written(tmp_path):
    """The hash comes from the pieces written, not from reading the files again: a source
    that gives other bytes each time (here /dev/urandom) still hashes to the archive."""
    import hashlib
    out = tmp_path / "r.7z"
    with open(out, "wb") as fh:
        digest, size = sevenzip.write_stored(fh, [sevenzip.StoredFile("r", 3 << 20, 0, 0, path=Path("/dev/urandom"))])
    assert (digest, size) == (hashlib.sha256(out.read_bytes()).hexdigest(), out.stat().st_size)


def test_methods_crcs_and_empty_files_as_7z_reports_them(mixed, tmp_path):
    contents, files = mixed
    archive = tmp_path / "payload.7z"
    write_archive(files, archive, PASSWORD, block_size=SMALL_BLOCK)
    entries = {e["Path"]: e for e in slt(archive, PASSWORD)}
    assert entries["logs/agent/jcagent.log.1.gz"]["Method"].startswith("Copy 7zAES")
    assert entries["attachments/screen"]["Method"].startswith("Copy 7zAES")     # entropy probe
    assert entries["logs/agent/jcagent.log"]["Method"].startswith("LZMA2:17 7zAES:19")
    assert entries["logs/agent/jcagent.log"]["Encrypted"] == "+"
    assert entries["empty.txt"]["Size"] == "0" and entries["empty.txt"]["CRC"] == ""
    assert entries["logs/agent/jcagent.log"]["Attributes"].startswith("A -rw")
    for name, data in contents.items():
        if data:
            assert int(entries[name]["CRC"], 16) == zlib.crc32(data), name
    # a new folder starts only where the method changes: text, copy, text again
    assert len({e.get("Block") for e in entries.values() if e.get("Block")}) == 3


@pytest.mark.parametrize("encode", [lzma2enc.sdk_block, lzma2enc.liblzma_block], ids=["7-zip", "liblzma"])
def test_big_file_is_compressed_as_several_independent_blocks(tmp_path, encode):
    calls = []

    def counting(block):
        calls.append(len(block))
        return encode(block)

    data = log_text(20000)
    contents = {"big.log": data}
    archive = tmp_path / "big.7z"
    with StreamingWriter(archive, PASSWORD, block_size=SMALL_BLOCK, encode=counting) as writer:
        for path, name in make_files(tmp_path, contents):
            writer.add_file(path, name)
    assert len(calls) == -(-len(data) // SMALL_BLOCK) and max(calls) == SMALL_BLOCK
    check_everywhere(archive, contents, tmp_path, PASSWORD)


@pytest.mark.parametrize("encode", [lzma2enc.sdk_block, lzma2enc.liblzma_block], ids=["7-zip", "liblzma"])
def test_joined_lzma2_blocks_are_one_valid_stream(encode):
    blocks = [log_text(500, seed=s) for s in range(4)] + [random.Random(3).randbytes(70_000)]
    stream = b"".join(encode(b) for b in blocks) + b"\x00"
    plain = lzma.decompress(stream, format=lzma.FORMAT_RAW, filters=[lzma2enc.LZMA2_FILTER])
    assert plain == b"".join(blocks)


def test_without_pylzma_the_writer_falls_back_to_liblzma(monkeypatch):
    monkeypatch.setattr(lzma2enc, "_pylzma", None)
    monkeypatch.delenv("JCDIAG_LZMA_ENCODER", raising=False)
    assert lzma2enc.encoder_name() == "liblzma"
    assert lzma2enc.block_encoder() is lzma2enc.liblzma_block
    with pytest.raises(lzma2enc.LZMA2Error):
        lzma2enc.sdk_block(b"x")


def lzma2_chunks(stream: bytes) -> list[tuple[int, int, int]]:
    """``(control, unpacked, packed)`` of each chunk of an LZMA2 stream without its end marker."""
    chunks, pos = [], 0
    while pos < len(stream):
        control = stream[pos]
        if control in (1, 2):
            size = int.from_bytes(stream[pos + 1:pos + 3], "big") + 1
            chunks.append((control, size, size))
            pos += 3 + size
        else:
            assert control & 0x80, f"not an LZMA2 chunk at {pos}: {control:#x}"
            unpacked = ((control & 0x1F) << 16 | int.from_bytes(stream[pos + 1:pos + 3], "big")) + 1
            packed = int.from_bytes(stream[pos + 3:pos + 5], "big") + 1
            chunks.append((control, unpacked, packed))
            pos += 5 + (1 if control >= 0xC0 else 0) + packed
    assert pos == len(stream)
    return chunks


# pieces that shrink a lot, a little and not at all: the cut adapts and sometimes overshoots
_PIECES = st.lists(st.one_of(
    st.integers(1, 400).map(lambda n: log_text(n, seed=n)),
    st.tuples(st.integers(0, 2**32), st.integers(1, 300_000)).map(lambda a: random.Random(a[0]).randbytes(a[1])),
    st.tuples(st.integers(0, 255), st.integers(1, 3_000_000)).map(lambda a: bytes([a[0]]) * a[1]),
    st.binary(max_size=2000)), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PIECES)
def test_sdk_blocks_decode_to_the_input_within_lzma2_limits(pieces):
    data = b"".join(pieces)
    assume(data)
    stream = lzma2enc.sdk_block(data)
    for control, unpacked, packed in lzma2_chunks(stream):
        assert control in (0x01, 0xE0 | (unpacked - 1) >> 16)    # every chunk stands alone
        assert unpacked <= 1 << 21 and packed <= 1 << 16
    assert lzma.decompress(stream + b"\x00", format=lzma.FORMAT_RAW,
                           filters=[lzma2enc.LZMA2_FILTER]) == data


def test_both_encoders_give_the_same_archive_contents(tmp_path, monkeypatch):
    """The fallback (liblzma) and 7-Zip's encoder: different bytes, the same files."""
    contents = {"logs/jcagent.log": log_text(30000), "noise.bin": random.Random(5).randbytes(300_000),
                "zeros.txt": bytes(5_000_000)}
    for name in ("7-zip", "liblzma"):
        monkeypatch.setenv("JCDIAG_LZMA_ENCODER", name)
        assert lzma2enc.encoder_name() == name
        archive = tmp_path / f"{name}.7z"
        (tmp_path / name).mkdir()
        write_archive(make_files(tmp_path / name, contents), archive, PASSWORD)
        check_everywhere(archive, contents, tmp_path / f"out-{name}", PASSWORD)


def test_headers_are_encrypted_and_names_are_not_in_clear(mixed, tmp_path):
    contents, files = mixed
    archive = tmp_path / "payload.7z"
    write_archive(files, archive, PASSWORD)
    assert headers_are_encrypted(archive)
    raw = archive.read_bytes()
    assert "jcagent".encode("utf-16-le") not in raw and b"jcagent" not in raw
    assert b"heartbeat" not in raw


def test_wrong_password_fails_7z_test(mixed, tmp_path):
    _, files = mixed
    archive = tmp_path / "payload.7z"
    write_archive(files, archive, PASSWORD)
    tested = run_7z("t", "-pnot-the-password", str(archive), check=False)
    assert tested.returncode != 0
    with pytest.raises(Exception):
        extract_py7zr(archive, tmp_path / "x", "not-the-password")


def test_unencrypted_copy_archive_for_the_outer_bundle(tmp_path):
    contents = {"bundle.json": b'{"format": "jcdiag-bundle/1"}\n', "payload.7z": random.randbytes(50_000)}
    archive = tmp_path / "outer.7z"
    write_archive(make_files(tmp_path, contents), archive, None, method="copy")
    entries = slt(archive, None)
    assert [e["Path"] for e in entries] == ["bundle.json", "payload.7z"]
    assert all(e["Method"] == "Copy" and e["Encrypted"] == "-" for e in entries)
    check_everywhere(archive, contents, tmp_path, None)
    assert archive.stat().st_size < sum(map(len, contents.values())) + 1024


def test_mtime_is_kept(tmp_path):
    src = tmp_path / "old.log"
    src.write_bytes(b"old line\n")
    os.utime(src, ns=(1_700_000_000_123_456_700, 1_700_000_000_123_456_700))
    archive = tmp_path / "t.7z"
    write_archive([(src, "old.log")], archive, PASSWORD)
    out = extract_7z(archive, tmp_path / "x", PASSWORD) / "old.log"
    assert out.stat().st_mtime_ns // 100 == 1_700_000_000_123_456_700 // 100


def test_empty_archive_and_only_empty_files(tmp_path):
    for files in ([], [("empty", b"")]):
        archive = tmp_path / f"e{len(files)}.7z"
        with StreamingWriter(archive, PASSWORD) as writer:
            for name, data in files:
                writer.add_bytes(name, data)
        check_everywhere(archive, dict(files), tmp_path / archive.stem, PASSWORD)


def test_failure_removes_the_partial_archive(tmp_path):
    archive = tmp_path / "partial.7z"
    with pytest.raises(FileNotFoundError):
        with StreamingWriter(archive, PASSWORD) as writer:
            writer.add_bytes("a.txt", log_text(100))
            writer.add_file(tmp_path / "missing", "missing")
    assert not archive.exists()


def test_background_writer_queues_files_in_order(mixed, tmp_path):
    contents, files = mixed
    archive = tmp_path / "bg.7z"
    with StreamingWriter(archive, PASSWORD, block_size=SMALL_BLOCK, background=True) as writer:
        for path, name in files:
            writer.add_file(path, name)
        writer.add_bytes("manifest.json", b'{"artifacts": []}\n')
    contents = {**contents, "manifest.json": b'{"artifacts": []}\n'}
    check_everywhere(archive, contents, tmp_path, PASSWORD)
    listed = [e["Path"] for e in slt(archive, PASSWORD)]
    non_empty = [name for name, data in contents.items() if data]
    assert listed[:len(non_empty)] == non_empty                # the order they were handed over


def test_background_failure_is_raised_and_nothing_is_left(tmp_path):
    archive = tmp_path / "bg.7z"
    writer = StreamingWriter(archive, PASSWORD, background=True)
    writer.add_bytes("a.txt", log_text(100))
    writer.add_file(tmp_path / "missing", "missing")       # fails later, in the feeder
    with pytest.raises(SevenZipWriteError, match="missing"):
        writer.close()
    assert not archive.exists()


def test_payload_needs_a_password(tmp_path):
    from collector.bundle import BundleError, start_payload
    with pytest.raises(BundleError, match="never writes it unencrypted"):
        start_payload(tmp_path, "")
    assert not (tmp_path / "payload.7z").exists()


def test_number_encoding_matches_7zformat():
    def decode(data: bytes) -> int:
        first, mask, value = data[0], 0x80, 0
        for i in range(8):
            if first & mask == 0:
                high = first & (mask - 1)
                return int.from_bytes(data[1:1 + i], "little") + (high << (8 * i))
            mask >>= 1
        return int.from_bytes(data[1:9], "little")

    assert number(0x7F) == b"\x7f" and number(0x80) == b"\x80\x80"
    assert number(19072) == b"\xc0\x80\x4a"           # as 7-Zip writes that pack position
    for value in [0, 1, 127, 128, 16383, 16384, 2 ** 21, 2 ** 35 + 5, 2 ** 56 - 1, 2 ** 56, 2 ** 64 - 1]:
        encoded = number(value)
        assert decode(encoded) == value
        assert len(encoded) == 1 + next(i for i in range(9) if i == 8 or value < 1 << (7 * (i + 1)))


def test_bit_vector_is_msb_first():
    assert bit_vector([True, False, False, False, False, False, False, False, True]) == b"\x80\x80"


def test_key_derivation_matches_py7zr():
    from py7zr.helpers import calculate_key
    assert derive_key(PASSWORD) == calculate_key(PASSWORD.encode("utf-16-le"), 19, b"", "sha256")
    assert derive_key("x", cycles_power=4) == calculate_key("x".encode("utf-16-le"), 4, b"", "sha256")


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=40), st.binary(max_size=16), st.integers(0, 18))
def test_key_derivation_matches_py7zr_on_any_password_salt_and_work_factor(password, salt, power):
    """Batches of 2**16 counters set by slices: every work factor below, at and above one
    batch (counters whose third byte is set), any salt, any password (surrogates aside)."""
    from py7zr.helpers import calculate_key
    assume(all(not 0xD800 <= ord(c) <= 0xDFFF for c in password))
    assert derive_key(password, salt, power) == calculate_key(password.encode("utf-16-le"), power, salt, "sha256")


def test_precompressed_detection():
    assert is_precompressed("logs/jcagent.log.2.GZ", b"")
    assert is_precompressed("screen", random.Random(1).randbytes(10_000))
    assert not is_precompressed("logs/jcagent.log", log_text(200))
    assert not is_precompressed("tiny", b"\x00\xff")


names = st.text(alphabet=st.sampled_from(list("abcXYZ019_-.é日 ")), min_size=1, max_size=12) \
    .map(str.strip).filter(lambda s: s not in ("", ".", ".."))
contents_strategy = st.one_of(
    st.binary(max_size=3000),
    st.integers(0, 400).map(lambda n: log_text(n)),
    st.integers(0, 6000).map(lambda n: random.Random(n).randbytes(n)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(st.lists(names, min_size=1, max_size=3).map("/".join), contents_strategy,
                             max_size=8),
       block_size=st.sampled_from([512, 4096, 1 << 20]))
def test_random_file_sets_roundtrip(tmp_path_factory, files, block_size):
    names_ = sorted(files)      # a name may not also be the folder of another name
    assume(not any(b.startswith(a + "/") for a in names_ for b in names_))
    tmp = tmp_path_factory.mktemp("h")
    archive = tmp / "r.7z"
    write_archive(make_files(tmp, files), archive, PASSWORD, block_size=block_size)
    check_everywhere(archive, files, tmp, PASSWORD)


# ---------------------------------------------------------------------------- streamed entries

def _stream(writer: StreamingWriter, name: str, data: bytes, piece: int = 50_000, discard: bool = False):
    entry = writer.open_entry(name)
    for start in range(0, len(data), piece):
        entry.write(data[start:start + piece])
    entry.discard() if discard else entry.close()


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
def test_streamed_entries_short_and_long_open_everywhere(tmp_path, background):
    contents = {"small.txt": log_text(50), "long.log": log_text(20000, seed=2), "after.txt": log_text(80, seed=3),
                "noise.bin": random.Random(9).randbytes(200_000), "last.log": log_text(9000, seed=4)}
    archive = tmp_path / "entries.7z"
    with StreamingWriter(archive, PASSWORD, block_size=SMALL_BLOCK, background=background) as writer:
        for name, data in contents.items():
            _stream(writer, name, data)
    check_everywhere(archive, contents, tmp_path, PASSWORD)
    listed = [e["Path"] for e in slt(archive, PASSWORD)]
    assert listed == list(contents)


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_discarded_entry_leaves_no_byte_in_the_archive(tmp_path, background, where):
    """A long entry discarded midway (a redaction failure) is cut out whole: the archive
    is the one written without it, and its bytes are nowhere in the file."""
    secret_text = b"".join(b"line %06d of the entry that failed midway\n" % i for i in range(30000))
    keep = {"a.txt": log_text(40), "b.log": log_text(12000, seed=5), "c.txt": log_text(30, seed=6)}
    names = list(keep)
    at = {"first": 0, "middle": 2, "last": 3}[where]
    archive = tmp_path / "cut.7z"
    with StreamingWriter(archive, PASSWORD, block_size=SMALL_BLOCK, background=background) as writer:
        for index in range(len(names) + 1):
            if index == at:
                _stream(writer, "failed.log", secret_text[:len(secret_text) * 2 // 3], discard=True)
            if index < len(names):
                _stream(writer, names[index], keep[names[index]])
    check_everywhere(archive, keep, tmp_path, PASSWORD)
    assert [e["Path"] for e in slt(archive, PASSWORD)] == names
    plain = tmp_path / "plain.7z"                       # the same archive without a password
    with StreamingWriter(plain, None, block_size=SMALL_BLOCK, background=background) as writer:
        _stream(writer, "failed.log", secret_text, discard=True)
        for name in names:
            _stream(writer, name, keep[name])
    raw = plain.read_bytes()
    assert b"entry that failed midway" not in raw and b"failed.log" not in raw
    reference = tmp_path / "reference.7z"
    with StreamingWriter(reference, None, block_size=SMALL_BLOCK) as writer:
        for name in names:
            _stream(writer, name, keep[name])
    assert len(raw) == reference.stat().st_size         # nothing of it stays, not even padding


def test_the_next_folder_compresses_while_the_last_one_ends(tmp_path, monkeypatch):
    """Folders follow each other without draining the compressors: the next long entry's
    first block is compressing while the previous entry's blocks still are (a drain at
    every file boundary left a core idle 13 times per 500 MB collect)."""
    import threading
    monkeypatch.setattr(sevenzip, "usable_cores", lambda: 3)
    b_began = threading.Event()
    waited_in_vain = []
    real = lzma2enc.block_encoder()

    def encode(block):
        if block[:1] == b"B":
            b_began.set()
        elif not b_began.wait(5):              # an "A" block: finishes only once B compresses
            waited_in_vain.append(len(block))
        return real(block)

    contents = {"a.log": b"A" + log_text(1500, seed=7), "b.log": b"B" + log_text(1500, seed=8)}
    assert all(SMALL_BLOCK < len(data) < 2 * SMALL_BLOCK for data in contents.values())
    archive = tmp_path / "overlap.7z"
    with StreamingWriter(archive, PASSWORD, threads=3, block_size=SMALL_BLOCK, encode=encode) as writer:
        for name, data in contents.items():
            _stream(writer, name, data)
    assert not waited_in_vain
    check_everywhere(archive, contents, tmp_path, PASSWORD)


def test_compression_starts_before_the_key_is_derived(tmp_path, monkeypatch):
    """The AES key (2**19 SHA-256 rounds) is needed only to write the first compressed
    block, not to begin compressing it."""
    import threading
    compressing = threading.Event()
    real_key, real_encode = sevenzip.derive_key, lzma2enc.block_encoder()

    def slow_key(password):
        assert compressing.wait(5), "no block compressed before the key was ready"
        return real_key(password)

    def encode(block):
        compressing.set()
        return real_encode(block)
    monkeypatch.setattr(sevenzip, "derive_key", slow_key)
    contents = {"a.log": log_text(4000, seed=11)}
    archive = tmp_path / "early.7z"
    with StreamingWriter(archive, PASSWORD, block_size=SMALL_BLOCK, encode=encode) as writer:
        _stream(writer, "a.log", contents["a.log"])
    check_everywhere(archive, contents, tmp_path, PASSWORD)


def test_the_last_data_is_cut_into_a_block_per_worker(tmp_path, monkeypatch):
    """What is left at close (less than a block) is shared by both workers, so the last
    seconds of a collect do not run on one core; mid-archive folders keep whole blocks."""
    monkeypatch.setattr(sevenzip, "MIN_SPLIT", 8 << 10)
    sizes = []
    real = lzma2enc.block_encoder()

    def encode(block):
        sizes.append(len(block))
        return real(block)
    contents = {"a.log": log_text(1500, seed=12), "b.log": log_text(1500, seed=13)}
    archive = tmp_path / "split.7z"
    with StreamingWriter(archive, PASSWORD, threads=2, block_size=SMALL_BLOCK, encode=encode) as writer:
        for name, data in contents.items():
            _stream(writer, name, data)
    rest = len(contents["b.log"]) - SMALL_BLOCK
    assert sizes == [SMALL_BLOCK, len(contents["a.log"]) - SMALL_BLOCK, SMALL_BLOCK, -(-rest // 2), rest // 2]
    check_everywhere(archive, contents, tmp_path, PASSWORD)


def test_a_short_discarded_entry_is_never_added(tmp_path):
    archive = tmp_path / "short.7z"
    with StreamingWriter(archive, PASSWORD, background=True) as writer:
        _stream(writer, "gone.txt", b"short and failed\n", discard=True)
        _stream(writer, "kept.txt", b"kept\n")
    assert [e["Path"] for e in slt(archive, PASSWORD)] == ["kept.txt"]


def test_streamed_pieces_wait_for_the_feeder_beyond_the_queue_limit(tmp_path, monkeypatch):
    """The producer never runs more than QUEUED_BYTES (plus one piece) ahead of the feeder."""
    monkeypatch.setattr(sevenzip, "QUEUED_BYTES", 256 << 10)
    seen = []
    real = sevenzip.StreamingWriter._entry_piece

    def watching(self, data, entry):
        seen.append(self._queued)
        return real(self, data, entry)

    monkeypatch.setattr(sevenzip.StreamingWriter, "_entry_piece", watching)
    data = random.Random(2).randbytes(6 << 20)
    archive = tmp_path / "bounded.7z"
    with StreamingWriter(archive, PASSWORD, block_size=SMALL_BLOCK, background=True) as writer:
        _stream(writer, "big.bin", data, piece=32 << 10)
    assert seen and max(seen) <= (256 << 10) + (32 << 10)
    check_everywhere(archive, {"big.bin": data}, tmp_path, PASSWORD)


def test_nothing_else_is_added_while_an_entry_is_open(tmp_path):
    with StreamingWriter(tmp_path / "x.7z", PASSWORD) as writer:
        entry = writer.open_entry("open.log")
        entry.write(b"x\n")
        with pytest.raises(SevenZipWriteError, match="still open"):
            writer.add_bytes("other.txt", b"y\n")
        with pytest.raises(SevenZipWriteError, match="still open"):
            writer.open_entry("other.log")
        entry.close()
        writer.add_bytes("other.txt", b"y\n")


# --------------------------------------------------------------------------- cores shared with the producer

@pytest.mark.timeout(120)
@pytest.mark.parametrize("cores", [1, 2])
def test_a_producer_and_the_compressors_share_the_cores_without_deadlock(tmp_path, monkeypatch, cores):
    """With the producer holding one of the cores, a streamed entry far beyond the queue
    limit and many queued files still complete (the producer frees its core while it
    waits), at most ``cores - 1`` blocks compress while it works, and all of them open."""
    monkeypatch.setattr(sevenzip, "usable_cores", lambda: cores)
    monkeypatch.setattr(sevenzip, "QUEUED_BYTES", 128 << 10)
    monkeypatch.setattr(sevenzip, "FEEDER_QUEUE", 2)
    import threading
    lock, running, most = threading.Lock(), [0], [0]
    waiting = threading.local()
    real_encode = lzma2enc.block_encoder()

    def counting(block):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real_encode(block)
        finally:
            with lock:
                running[0] -= 1

    busy_while_working = []
    real_run_piece = sevenzip.StreamingWriter._run_piece

    def watching(self, work, data, *args):
        busy_while_working.append(running[0])       # the producer is working here: not waiting
        return real_run_piece(self, work, data, *args)

    monkeypatch.setattr(sevenzip.StreamingWriter, "_run_piece", watching)
    contents = {"big.log": log_text(60000, seed=11)}
    contents.update({f"small{i}.txt": log_text(20, seed=i) for i in range(12)})
    archive = tmp_path / "shared.7z"
    with StreamingWriter(archive, PASSWORD, block_size=SMALL_BLOCK, encode=counting, background=True) as writer:
        _stream(writer, "big.log", contents["big.log"], piece=16 << 10)
        for name, data in contents.items():
            if name != "big.log":
                writer.add_bytes(name, data)
    assert busy_while_working and max(busy_while_working) <= max(1, cores - 1)
    assert 1 <= most[0] <= 2
    check_everywhere(archive, contents, tmp_path, PASSWORD)


def test_core_share_slots():
    """The producer's slot: taken at start, free while it waits and once it is done."""
    import threading
    share = sevenzip._CoreShare(2, producer=True)
    started, release = threading.Event(), threading.Event()
    done = []

    def compress(block):
        started.set()
        release.wait(10)
        return block

    first = threading.Thread(target=lambda: done.append(share.computing(compress)(b"1")))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: done.append(share.computing(lambda b: b)(b"2")))
    second.start()
    second.join(0.3)
    assert second.is_alive()                     # the producer and the first compressor hold both
    with share.producer_waiting():
        second.join(10)
        assert not second.is_alive() and done == [b"2"]
    share.producer_done()
    share.producer_done()                        # twice is once
    release.set()
    first.join(10)
    assert done == [b"2", b"1"]
    both = [threading.Thread(target=share.computing(lambda b: b), args=(b"x",)) for _ in range(2)]
    for t in both:
        t.start()
    for t in both:
        t.join(10)
        assert not t.is_alive()
    assert share._slots.acquire(timeout=1) and share._slots.acquire(timeout=1)   # no slot lost
    assert not share._slots.acquire(timeout=0.05)                               # none made up
