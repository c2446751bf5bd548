"""The one schema of ``bundle.json``, the public header every bundle carries.

Bundles arrive by e-mail and ticket attachment, so the header is hostile input:
nothing authenticates it (the payload's SHA-256 is *in* it).  Every reader of a
header (``inspect``, ``open``, ``upload``, the spool and the intake, all through
:func:`collector.bundle.read_header`) gets it from :func:`parse_header`, which
either returns a header whose every known field has the type and shape ``seal``
writes, or raises :class:`HeaderError` naming the field and the reason.  Nothing
downstream needs ``isinstance`` checks or ``.get`` defaults, and the only header
value that may ever choose a path is ``bundle_id``, which must already be in the
exact canonical ``JCD-XXXX-XXXX-XXXX`` form (hostile text is refused, never folded
into some other valid ID).

Bounds, so a header cannot exhaust the reader: the bytes are capped at
:data:`HEADER_LIMIT` (the caller checks the archive's declared size before
reading), JSON nesting at :data:`MAX_DEPTH`, known strings at a length each,
recipients at :data:`MAX_RECIPIENTS`.  Unknown extra fields are tolerated (a
newer jcdiag of the same format may add some) but fall under the same byte and
depth caps.  Duplicate keys, ``NaN``/``Infinity`` and control characters in known
strings are refused: the first makes two readers disagree on one file, the last
could rewrite an engineer's terminal when ``inspect`` prints the header.

:func:`check_record` applies the same rules to the record an intake returns for
``fetch`` (its ID, size and digest build a path and decide what is kept).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any, Optional

from .ids import is_bundle_id

FORMAT = "jcdiag-bundle/1"
PAYLOAD_NAME = "payload.7z"
HEADER_LIMIT = 1024 * 1024          # bytes of bundle.json, read with this cap
MAX_DEPTH = 32                      # JSON nesting, extra fields included
MAX_RECIPIENTS = 64
MAX_SEALED_SECRET = 4096            # base64 characters: RSA-16384 seals fit in 2732
MAX_SIZE = 2 ** 62                  # a payload size beyond any disk, still a plain int
_HEX64 = re.compile(r"[0-9a-f]{64}")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class HeaderError(ValueError):
    """``bundle.json`` does not follow the schema: ``field`` names where, the message why."""

    kind = "header_invalid"

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class UnsupportedFormat(HeaderError):
    """A well-formed header of another bundle format (a newer jcdiag, another tool)."""

    kind = "unsupported_format"


def shown(value: Any, limit: int = 40) -> str:
    """A hostile value as safe, short text for one error line (escaped, truncated)."""
    text = ascii(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= limit else text[:limit] + "..."


# ----------------------------------------------------------------------------- JSON


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise HeaderError(shown(key), "the key appears twice")
        obj[key] = value
    return obj


def _no_constant(name: str):
    raise HeaderError("", f"{name} is not a JSON number")


def _check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than ``limit`` (iterative: the check itself cannot overflow)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                raise HeaderError("", f"nested deeper than {limit} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def load_json(data: bytes, limit: int = HEADER_LIMIT) -> Any:
    """JSON from hostile bytes: size-capped, no duplicate keys, no NaN, bounded depth."""
    if len(data) > limit:
        raise HeaderError("", f"{len(data)} bytes, more than the {limit} a header may have")
    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except HeaderError:
        raise
    except RecursionError:
        raise HeaderError("", f"nested deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:   # JSONDecodeError, int digit limit
        raise HeaderError("", f"not valid JSON ({type(exc).__name__})") from None
    _check_depth(value)
    return value


# ----------------------------------------------------------------------------- fields


def _obj(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise HeaderError(field, f"must be an object, not {shown(value)}")
    return value


def _str(obj: dict, key: str, field: str, max_len: int, *, optional: bool = False,
         pattern: Optional[re.Pattern] = None, what: str = "") -> Optional[str]:
    if key not in obj or (optional and obj[key] is None):
        if optional:
            return None
        raise HeaderError(field, "is missing")
    value = obj[key]
    if not isinstance(value, str):
        raise HeaderError(field, f"must be text, not {shown(value)}")
    if len(value) > max_len:
        raise HeaderError(field, f"is {len(value)} characters long; at most {max_len} are allowed")
    if not value.isprintable():
        raise HeaderError(field, f"holds control or unprintable characters: {shown(value)}")
    if pattern is not None and not pattern.fullmatch(value):
        raise HeaderError(field, f"must be {what}, not {shown(value)}")
    return value


def _int(obj: dict, key: str, field: str, low: int, high: int) -> int:
    if key not in obj:
        raise HeaderError(field, "is missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise HeaderError(field, f"must be a whole number, not {shown(value)}")
    if not low <= value <= high:
        raise HeaderError(field, f"must be between {low} and {high}, not {value}")
    return value


def _bundle_id(obj: dict, key: str, field: str) -> str:
    value = _str(obj, key, field, 32)
    if not is_bundle_id(value):
        raise HeaderError(field, f"must be a bundle ID JCD-XXXX-XXXX-XXXX (Crockford base32), "
                                 f"not {shown(value)}")
    return value


def _created(obj: dict) -> str:
    value = _str(obj, "created", "created", 64)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise HeaderError("created", f"must be an ISO 8601 date and time, not {shown(value)}") from None
    return value


def _recipient(value: Any, field: str) -> dict:
    entry = _obj(value, field)
    _str(entry, "key_id", f"{field}.key_id", 64, pattern=_HEX64,
         what="64 lowercase hex characters (SHA-256 of the public key)")
    _str(entry, "algorithm", f"{field}.algorithm", 64)
    sealed = _str(entry, "sealed_secret", f"{field}.sealed_secret", MAX_SEALED_SECRET,
                  pattern=_B64, what="base64 text")
    try:
        base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise HeaderError(f"{field}.sealed_secret", "is not valid base64") from None
    return entry


def _payload(value: Any) -> dict:
    payload = _obj(value, "payload")
    name = _str(payload, "name", "payload.name", 64)
    if name != PAYLOAD_NAME:
        raise HeaderError("payload.name", f"must be {PAYLOAD_NAME}, not {shown(name)}")
    _str(payload, "sha256", "payload.sha256", 64, pattern=_HEX64, what="64 lowercase hex characters")
    _int(payload, "size", "payload.size", 0, MAX_SIZE)
    _str(payload, "compression", "payload.compression", 256, optional=True)
    _str(payload, "encryption", "payload.encryption", 256, optional=True)
    return payload


def validate_header(header: Any) -> dict:
    """``header`` (parsed JSON) if it follows the schema, else :class:`HeaderError`.

    The format is checked first: another format's fields are not this one's business.
    """
    header = _obj(header, "bundle.json")
    if "format" not in header:
        raise HeaderError("format", "is missing: not a jcdiag bundle header")
    fmt = header["format"]
    if not isinstance(fmt, str):
        raise HeaderError("format", f"must be text, not {shown(fmt)}")
    if fmt != FORMAT:
        raise UnsupportedFormat("format", f"{shown(fmt)} is not supported (this jcdiag reads {FORMAT}); "
                                          "open it with the jcdiag version that made it")
    _bundle_id(header, "bundle_id", "bundle_id")
    _created(header)
    tool = _obj(header.get("tool"), "tool")
    _str(tool, "name", "tool.name", 64)
    _str(tool, "version", "tool.version", 64)
    _str(header, "case_id", "case_id", 128, optional=True)
    recipients = header.get("recipients", [])
    if not isinstance(recipients, list):
        raise HeaderError("recipients", f"must be a list, not {shown(recipients)}")
    if len(recipients) > MAX_RECIPIENTS:
        raise HeaderError("recipients", f"{len(recipients)} entries; at most {MAX_RECIPIENTS} are allowed")
    for i, entry in enumerate(recipients):
        _recipient(entry, f"recipients[{i}]")
    protected = header.get("password_protected", False)
    if not isinstance(protected, bool):
        raise HeaderError("password_protected", f"must be true or false, not {shown(protected)}")
    if bool(recipients) == protected:
        raise HeaderError("recipients", "a bundle is sealed either to recipient keys or with a password "
                                        f"(here: {len(recipients)} recipients, password_protected "
                                        f"{str(protected).lower()})")
    if "payload" not in header:
        raise HeaderError("payload", "is missing")
    _payload(header["payload"])
    return header


def parse_header(data: bytes) -> dict:
    """The validated header from the bytes of ``bundle.json``."""
    return validate_header(load_json(data))


# ----------------------------------------------------------------------------- intake records


def check_record(record: Any, bundle_id: str) -> dict:
    """An intake's record of ``bundle_id`` (``fetch``), checked before it decides anything."""
    record = _obj(record, "record")
    if "bundle_id" in record and record["bundle_id"] != bundle_id:
        raise HeaderError("bundle_id", f"the server answered for {shown(record['bundle_id'])}, "
                                       f"not {bundle_id}")
    _str(record, "sha256", "sha256", 64, pattern=_HEX64, what="64 lowercase hex characters")
    _int(record, "size", "size", 0, MAX_SIZE)
    _str(record, "case_id", "case_id", 128, optional=True)
    return record
