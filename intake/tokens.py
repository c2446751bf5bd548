"""Signed, expiring, scoped bearer tokens for the intake, and the secret that signs them.

A token is ``jcdt1.<claims>.<signature>``: the claims are base64url JSON
(``scope``, ``case``, ``exp``, ``iat``, ``jti``) and the signature is
HMAC-SHA256 over ``jcdt1.<claims>`` with a 32-byte secret the intake keeps in its
data directory (mode 0600).  Nothing is stored per token, so any intake process
that has the secret can check any token: the service stays stateless.

Two scopes exist, and neither implies the other:

* ``upload`` for one case: create, resume and cancel uploads of that case only;
* ``engineer``: look bundles up and download them; it cannot upload.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

PREFIX = "jcdt1"
SECRET_NAME = "token-secret"
SECRET_BYTES = 32
SCOPES = ("upload", "engineer")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class TokenError(Exception):
    """A token that cannot be used: ``status`` is 401 (not valid) or 403 (not allowed here)."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Claims:
    scope: str
    case_id: Optional[str]
    expires: int            # Unix time
    token_id: str

    def allow_upload(self, case_id: Optional[str]) -> None:
        """Raise unless this token may upload to ``case_id`` (None: the token's own case)."""
        if self.scope != "upload":
            raise TokenError("this is an engineer token; uploads need an upload token for the case "
                             "(jcdiag intake token --case ID)", 403)
        if case_id is not None and case_id != self.case_id:
            raise TokenError(f"this token is for case {self.case_id}, not case {case_id}: use the "
                             "token support gave for this case", 403)

    def allow_engineer(self) -> None:
        if self.scope != "engineer":
            raise TokenError("looking bundles up needs an engineer token "
                             "(jcdiag intake token --engineer)", 403)


def parse_duration(text: str) -> int:
    """Seconds in ``30m``, ``12h``, ``7d``, ``2w`` or ``45s``; ValueError saying what is wrong."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration: use e.g. 30m, 12h, 7d or 2w")
    seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return seconds


def load_or_create_secret(data_dir: Path | str) -> bytes:
    """The signing secret of ``data_dir``, made (0600, exclusive create) on first use."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) < SECRET_BYTES:
            raise TokenError(f"{path} is damaged (too short); remove it to make a new one "
                             "(every token issued so far stops working)", 500) from None
        return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
        fh.flush()
        os.fsync(fh.fileno())
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, signed_part: str) -> str:
    return _b64(hmac.new(secret, signed_part.encode("ascii"), hashlib.sha256).digest())


def issue(secret: bytes, scope: str, case_id: Optional[str] = None, ttl_seconds: int = 7 * 86400,
          now: Optional[float] = None) -> str:
    """A new token; ``case_id`` is required for (and only for) the ``upload`` scope."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    if (scope == "upload") != bool(case_id):
        raise ValueError("an upload token needs a case ID, an engineer token none")
    issued = int(now if now is not None else time.time())
    claims = {"scope": scope, "case": case_id, "iat": issued, "exp": issued + int(ttl_seconds),
              "jti": secrets.token_hex(8)}
    body = f"{PREFIX}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{body}.{_sign(secret, body)}"


def verify(secret: bytes, token: str, now: Optional[float] = None) -> Claims:
    """The claims of a genuine, unexpired token, or TokenError (401) saying why not."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("not a jcdiag intake token (expected jcdt1.<claims>.<signature>); check "
                         "the token file")
    body = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(secret, body), parts[2]):
        raise TokenError("token signature is not valid for this intake (wrong server, or the "
                         "token was altered); ask support for a new token")
    try:
        claims = json.loads(_unb64(parts[1]))
        scope, case_id, expires = claims["scope"], claims.get("case"), int(claims["exp"])
    except (ValueError, KeyError, TypeError):
        raise TokenError("token claims are damaged; ask support for a new token") from None
    if scope not in SCOPES:
        raise TokenError(f"token has unknown scope {scope!r}")
    current = now if now is not None else time.time()
    if current >= expires:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(expires))
        raise TokenError(f"token expired at {when}; ask support for a new token "
                         "(jcdiag intake token)")
    return Claims(scope, case_id, expires, str(claims.get("jti", "")))
