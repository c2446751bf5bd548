import subprocess

import pytest

from collector.bundle import BundleError, read_header, seal, start_payload
from collector.envelope import keygen, load_private_key, load_recipient_file, new_secret
from collector.unpack import Credentials, open_bundle
from collector.ids import new_bundle_id
from tests.opener import headers_are_encrypted, open_with_stock_tools


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return keygen(tmp_path_factory.mktemp("k") / "support")


@pytest.fixture
def made(tmp_path, keys):
    staging = tmp_path / "staging"
    (staging / "logs/agent").mkdir(parents=True)
    (staging / "SUMMARY.txt").write_text("summary first\n")
    (staging / "logs/agent/jcagent.log").write_bytes(b"2026-11-01 line\n" * 5000)
    out = tmp_path / "out"
    out.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    secret = new_secret()
    bid = new_bundle_id()
    rec = load_recipient_file(keys[1])
    with start_payload(work, secret) as payload:
        for name in ("logs/agent/jcagent.log", "SUMMARY.txt"):
            payload.add_file(staging / name, name)
    written = seal(payload.path, out, bid, {"case_id": "42", "recipients": [rec.seal(secret)]})
    assert not payload.path.exists()                                     # the payload is inside now
    return written, secret


def test_bundle_opens_with_7z_and_openssl_alone(made, keys, tmp_path):
    written, secret = made
    assert written.path.name == f"{written.header['bundle_id']}.7z"
    assert list(written.path.parent.iterdir()) == [written.path]        # no temp files left
    inner = open_with_stock_tools(written.path, keys[0], tmp_path / "x")
    assert (inner / "SUMMARY.txt").read_text() == "summary first\n"
    assert (inner / "logs/agent/jcagent.log").read_bytes() == b"2026-11-01 line\n" * 5000
    assert headers_are_encrypted(tmp_path / "x/outer/payload.7z")


def test_outer_archive_is_stored_not_compressed(made):
    written, _ = made
    listing = subprocess.run(["7z", "l", "-slt", str(written.path)], capture_output=True, text=True,
                             check=True).stdout
    assert "Method = Copy" in listing and "Encrypted = -" in listing


def test_header_is_public_and_complete(made):
    written, _ = made
    h = read_header(written.path)
    assert h["format"] == "jcdiag-bundle/1"
    assert h["case_id"] == "42"
    assert set(h["recipients"][0]) == {"key_id", "algorithm", "sealed_secret"}
    assert len(h["payload"]["sha256"]) == 64 and h["payload"]["size"] > 0


def test_open_bundle_roundtrip(made, keys, tmp_path):
    written, _ = made
    key = load_private_key(keys[0])
    opened = open_bundle(written.path, Credentials(private_key=key), tmp_path / "o")
    assert "SUMMARY.txt" in opened.names and (tmp_path / "o/logs/agent/jcagent.log").exists()


def test_tampered_payload_is_refused_before_extracting(made, keys, tmp_path):
    written, _ = made
    data = bytearray(written.path.read_bytes())
    data[len(data) // 2] ^= 0xFF          # inside the stored payload bytes
    bad = tmp_path / "bad.7z"
    bad.write_bytes(bytes(data))
    key = load_private_key(keys[0])
    before = sorted(tmp_path.iterdir())
    with pytest.raises(BundleError) as err:
        open_bundle(bad, Credentials(private_key=key), tmp_path / "o")
    assert err.value.kind in ("payload_mismatch", "not_a_bundle")
    assert sorted(tmp_path.iterdir()) == before                          # no target, no temp folder


def test_truncated_bundle_is_refused(made, tmp_path):
    written, _ = made
    bad = tmp_path / "short.7z"
    bad.write_bytes(written.path.read_bytes()[: written.size // 2])
    with pytest.raises(BundleError, match="damaged|truncated|does not match"):
        open_bundle(bad, Credentials(password="x"), tmp_path / "o")


def test_wrong_password_is_a_clear_error(made, tmp_path):
    written, _ = made
    with pytest.raises(BundleError, match="password") as err:      # sealed to a key, not a password
        open_bundle(written.path, Credentials(password="not-the-password"), tmp_path / "o")
    assert err.value.kind == "needs_key"


def test_not_a_bundle(tmp_path):
    junk = tmp_path / "junk.7z"
    junk.write_bytes(b"hello")
    with pytest.raises(BundleError, match="not a jcdiag bundle|damaged"):
        read_header(junk)
