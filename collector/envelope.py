"""The per-bundle secret and its sealing to support's public keys.

Each bundle gets 32 random bytes written as base64url (43 characters): that text
is the 7z password of the payload.  It is sealed with RSA-OAEP-SHA256 (MGF1-SHA256)
to every recipient key, so an engineer needs nothing but OpenSSL to recover it::

    base64 -d sealed.b64 | openssl pkeyutl -decrypt -inkey support.key.pem \
        -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256

A recipient is identified by the SHA-256 of its SubjectPublicKeyInfo DER, the same
whether it was given as a PEM public key or an X.509 certificate.
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM = "RSA-OAEP-SHA256"
MIN_RSA_BITS = 3072
SECRET_BYTES = 32


class EnvelopeError(Exception):
    """A key or sealed secret that cannot be used; the message says which and why.

    ``kind`` is a stable word for scripts (``key_error``, ``sealed_to_other_keys``,
    ``header_invalid``); ``details`` are extra fields for ``--json``.
    """

    def __init__(self, message: str, kind: str = "key_error", **details):
        super().__init__(message)
        self.kind = kind
        self.details = details


@dataclass(frozen=True)
class Recipient:
    key_id: str                       # hex SHA-256 of the SubjectPublicKeyInfo DER
    public_key: rsa.RSAPublicKey
    label: str = ""                   # where it came from (file name, server)

    def seal(self, secret: str) -> dict:
        """The header entry that lets this recipient's private key recover ``secret``."""
        sealed = self.public_key.encrypt(secret.encode("ascii"), _oaep())
        return {"key_id": self.key_id, "algorithm": ALGORITHM,
                "sealed_secret": base64.b64encode(sealed).decode("ascii")}


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def new_secret() -> str:
    """32 random bytes as unpadded base64url: 43 characters, safe as a 7z password."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode("ascii")


def key_id(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_recipient(data: bytes, label: str = "") -> Recipient:
    """A recipient from PEM bytes holding an RSA public key or an X.509 certificate."""
    name = label or "recipient"
    public_key = None
    if b"-----BEGIN CERTIFICATE-----" in data:
        from cryptography import x509       # 35 ms of every collect's start, for certificates only
        try:
            public_key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError as exc:
            raise EnvelopeError(f"{name}: not a readable X.509 certificate ({exc})") from None
    elif b"PRIVATE KEY-----" in data:
        raise EnvelopeError(f"{name}: this is a private key; give the public key "
                            "(jcdiag keygen writes it as PREFIX.pub.pem)")
    else:
        try:
            public_key = serialization.load_pem_public_key(data)
        except ValueError:
            raise EnvelopeError(f"{name}: not a PEM public key or certificate") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise EnvelopeError(f"{name}: only RSA recipient keys are supported")
    if public_key.key_size < MIN_RSA_BITS:
        raise EnvelopeError(f"{name}: RSA key of {public_key.key_size} bits is too small; "
                            f"at least {MIN_RSA_BITS} bits are required")
    return Recipient(key_id(public_key), public_key, name)


def load_recipient_file(path: Path | str) -> Recipient:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EnvelopeError(f"cannot read recipient key {path}: {exc.strerror or exc}") from None
    return load_recipient(data, str(path))


def load_private_key(path: Path | str, passphrase: bytes | None = None) -> rsa.RSAPrivateKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EnvelopeError(f"cannot read private key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        raise EnvelopeError(f"{path}: the private key is protected by a passphrase") from None
    except ValueError:
        raise EnvelopeError(f"{path}: not a PEM private key (or wrong passphrase)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise EnvelopeError(f"{path}: not an RSA private key")
    return key


def unseal(recipients: list[dict], private_key: rsa.RSAPrivateKey) -> str:
    """The bundle secret, from the header entry sealed to ``private_key``'s public half."""
    kid = key_id(private_key.public_key())
    entry = next((r for r in recipients if r.get("key_id") == kid), None)
    if entry is None:
        known = [str(r.get("key_id", "?")) for r in recipients]
        raise EnvelopeError(f"this bundle is sealed to other keys: the bundle's key ids are "
                            f"{', '.join(known) or 'none'}; your key's id is {kid}",
                            "sealed_to_other_keys", bundle_key_ids=known, your_key_id=kid)
    if entry.get("algorithm") != ALGORITHM:
        raise EnvelopeError(f"unsupported sealing algorithm {str(entry.get('algorithm'))[:64]!r} "
                            f"(this jcdiag uses {ALGORITHM})", "unsupported_format")
    try:
        sealed = base64.b64decode(entry["sealed_secret"], validate=True)
        secret = private_key.decrypt(sealed, _oaep()).decode("ascii")
    except (ValueError, KeyError, TypeError):   # UnicodeDecodeError is a ValueError
        raise EnvelopeError("the sealed secret in the bundle header does not decrypt with your key: "
                            "the header is damaged", "header_invalid", field="recipients") from None
    return secret


def keygen(prefix: Path | str, bits: int = MIN_RSA_BITS) -> tuple[Path, Path]:
    """Write ``PREFIX.key.pem`` (mode 0600, PKCS#8) and ``PREFIX.pub.pem``; refuse to overwrite."""
    prefix = str(prefix)
    key_path, pub_path = Path(prefix + ".key.pem"), Path(prefix + ".pub.pem")
    for p in (key_path, pub_path):
        if p.exists():
            raise EnvelopeError(f"{p} already exists; choose another --out or move it away")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    pub_path.write_bytes(public_pem)
    return key_path, pub_path
