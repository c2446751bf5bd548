import base64
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from collector.envelope import (EnvelopeError, keygen, load_private_key, load_recipient,
                                load_recipient_file, new_secret, unseal)


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("keys") / "support"
    return keygen(prefix)


def test_secret_is_43_base64url_chars():
    s = new_secret()
    assert len(s) == 43
    assert len(base64.urlsafe_b64decode(s + "=")) == 32
    assert new_secret() != s


def test_keygen_writes_private_key_0600_and_refuses_overwrite(keypair):
    key, pub = keypair
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PRIVATE KEY" in key.read_bytes()
    assert b"BEGIN PUBLIC KEY" in pub.read_bytes()
    with pytest.raises(EnvelopeError, match="already exists"):
        keygen(str(key)[: -len(".key.pem")])


def test_seal_opens_with_openssl_pkeyutl(keypair, tmp_path):
    key, pub = keypair
    secret = new_secret()
    entry = load_recipient_file(pub).seal(secret)
    sealed = tmp_path / "sealed.bin"
    sealed.write_bytes(base64.b64decode(entry["sealed_secret"]))
    out = subprocess.run(
        ["openssl", "pkeyutl", "-decrypt", "-inkey", str(key), "-in", str(sealed),
         "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
         "-pkeyopt", "rsa_mgf1_md:sha256"], capture_output=True, check=True)
    assert out.stdout.decode() == secret
    assert unseal([entry], load_private_key(key)) == secret


def test_key_id_is_the_same_for_a_key_and_its_certificate(keypair, tmp_path):
    key, pub = keypair
    cert = tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-new", "-x509", "-key", str(key), "-subj", "/CN=support",
                    "-days", "30", "-out", str(cert)], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(pub), "-outform", "DER"],
                         check=True, capture_output=True).stdout
    import hashlib
    expected = hashlib.sha256(der).hexdigest()
    assert load_recipient_file(pub).key_id == expected
    assert load_recipient_file(cert).key_id == expected


def test_small_and_non_rsa_keys_are_refused():
    small = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(EnvelopeError, match="2048 bits is too small"):
        load_recipient(small, "small.pem")
    ecpub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(EnvelopeError, match="only RSA"):
        load_recipient(ecpub, "ec.pem")
    with pytest.raises(EnvelopeError, match="not a PEM"):
        load_recipient(b"hello", "junk.pem")


def test_private_key_given_as_recipient_is_refused(keypair):
    key, _ = keypair
    with pytest.raises(EnvelopeError, match="private key"):
        load_recipient_file(key)


def test_wrong_key_says_so(keypair, tmp_path):
    _, pub = keypair
    entry = load_recipient_file(pub).seal(new_secret())
    other_key, _ = keygen(tmp_path / "other")
    with pytest.raises(EnvelopeError, match="sealed to other keys"):
        unseal([entry], load_private_key(other_key))
