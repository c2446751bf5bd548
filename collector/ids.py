"""Bundle IDs: ``JCD-XXXX-XXXX-XXXX`` in Crockford base32.

Made at collection time, before any upload, so an offline machine can still
answer the engineer who asks for it.  Crockford's alphabet has no I, L, O or U, so
an ID read aloud or retyped from a screenshot survives; :func:`normalize` folds
the usual misreadings (o->0, i/l->1) and case back.
"""
from __future__ import annotations

import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIX = "JCD"
GROUPS = 3
GROUP_LEN = 4
RANDOM_BITS = GROUPS * GROUP_LEN * 5   # 60 bits: the 12 symbols the format has room for

_PATTERN = re.compile(rf"^{PREFIX}(-[{ALPHABET}]{{{GROUP_LEN}}}){{{GROUPS}}}$")
_FOLD = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_bundle_id() -> str:
    """A fresh random bundle ID."""
    n = secrets.randbits(RANDOM_BITS)
    symbols = []
    for _ in range(GROUPS * GROUP_LEN):
        symbols.append(ALPHABET[n & 31])
        n >>= 5
    body = "".join(reversed(symbols))
    groups = [body[i:i + GROUP_LEN] for i in range(0, len(body), GROUP_LEN)]
    return "-".join([PREFIX, *groups])


def is_bundle_id(text: str) -> bool:
    return bool(_PATTERN.fullmatch(text))      # match() let a trailing newline through


def normalize(text: str) -> str:
    """The canonical form of a typed ID, or ValueError saying what is wrong.

    Accepts any case, missing or extra hyphens and spaces, and the misreadings
    Crockford base32 defines (O for 0, I and L for 1).
    """
    raw = re.sub(r"[\s\-_]", "", text.strip().upper())
    if raw.startswith(PREFIX):
        raw = raw[len(PREFIX):]
    raw = raw.translate(_FOLD)
    want = GROUPS * GROUP_LEN
    if len(raw) != want or any(c not in ALPHABET for c in raw):
        raise ValueError(
            f"{text!r} is not a bundle ID: expected {PREFIX}-XXXX-XXXX-XXXX "
            f"with {want} symbols from {ALPHABET}")
    return "-".join([PREFIX] + [raw[i:i + GROUP_LEN] for i in range(0, want, GROUP_LEN)])
