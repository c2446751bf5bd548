"""Signed, expiring, scoped bearer tokens for the intake: standard JWTs (HS256, PyJWT).

A token is a JSON Web Token signed with HMAC-SHA256 under a 32-byte secret the
intake keeps in its data directory (``token-secret``, mode 0600).  Standard JWTs,
so a ticketing system can mint an upload token itself with any JWT library and
the same secret; the claims are::

    scope   "upload" or "engineer"                      (required)
    case    the support case ID (upload tokens only; 1-128 printable characters)
    exp     expiry, Unix seconds                        (required)
    iat     issued at, Unix seconds                     (required)
    jti     a unique token ID (logged nowhere; for revocation lists)

Only HS256 is accepted (``alg: none`` and key-confusion tricks are refused by
PyJWT's algorithm allow-list).  Nothing is stored per token, so any intake
process that has the secret can check any token: the service stays stateless.

Two scopes exist, and neither implies the other:

* ``upload`` for one case: create, resume and cancel uploads of that case only;
* ``engineer``: look bundles up and download them; it cannot upload.
"""
from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import jwt

ALGORITHM = "HS256"
MAX_TOKEN = 4096                       # characters: a JWT of our claims is ~250
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


def issue(secret: bytes, scope: str, case_id: Optional[str] = None, ttl_seconds: int = 7 * 86400,
          now: Optional[float] = None) -> str:
    """A new token; ``case_id`` is required for (and only for) the ``upload`` scope."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    if (scope == "upload") != bool(case_id):
        raise ValueError("an upload token needs a case ID, an engineer token none")
    if case_id is not None and not _case_ok(case_id):
        raise ValueError("a case ID is 1-128 printable characters")
    issued = int(now if now is not None else time.time())
    claims = {"scope": scope, "iat": issued, "exp": issued + int(ttl_seconds), "jti": secrets.token_hex(8)}
    if case_id:
        claims["case"] = case_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: bytes, token: str, now: Optional[float] = None) -> Claims:
    """The claims of a genuine, unexpired token, or TokenError (401) saying why not."""
    token = token.strip()
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise TokenError("not an intake token (expected a JWT: header.claims.signature); check "
                         "the token file")
    current = now if now is not None else time.time()
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["exp", "iat", "scope"], "verify_exp": False,
                                     "verify_iat": False})
    except jwt.InvalidSignatureError:
        raise TokenError("token signature is not valid for this intake (wrong server, or the "
                         "token was altered); ask support for a new token") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError(f"token is not signed with {ALGORITHM}; ask support for a new token") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"token has no {exc.claim!r} claim; ask support for a new token") from None
    except jwt.PyJWTError:
        raise TokenError("not an intake token (a damaged or foreign JWT); ask support for a new "
                         "token") from None
    scope, case_id, expires, issued = (claims.get("scope"), claims.get("case"), claims.get("exp"),
                                       claims.get("iat"))
    if scope not in SCOPES:
        raise TokenError(f"token has unknown scope {str(scope)[:20]!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (expires, issued)):
        raise TokenError("token exp and iat must be whole Unix seconds")
    if scope == "upload" and not _case_ok(case_id):
        raise TokenError("upload token without a valid case claim (1-128 printable characters)")
    if scope == "engineer":
        case_id = None
    if current >= expires:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(max(0, min(expires, 2 ** 33))))
        raise TokenError(f"token expired at {when}; ask support for a new token "
                         "(jcdiag intake token)")
    if issued > current + 300:
        raise TokenError("token is issued in the future (clock skew over 5 minutes)")
    return Claims(scope, case_id, expires, str(claims.get("jti", ""))[:64])


def _case_ok(case_id) -> bool:
    return isinstance(case_id, str) and 0 < len(case_id) <= 128 and case_id.isprintable()
