"""The one header schema (collector/header.py), by property: whatever JSON value lands in
whatever field, the validator answers with a header or its own HeaderError, never
anything else; every header ``seal`` could write comes back unchanged."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from collector.header import (FORMAT, HEADER_LIMIT, MAX_DEPTH, HeaderError, UnsupportedFormat, check_record,
                              load_json, parse_header, validate_header)
from collector.ids import ALPHABET

HEX = "0123456789abcdef"



def _json(floats) -> st.SearchStrategy:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | floats | st.text(max_size=80),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=12)


json_values = _json(st.floats(allow_nan=False))                        # Infinity: refused by the reader
finite_json = _json(st.floats(allow_nan=False, allow_infinity=False))   # what a valid header may carry

bundle_ids = st.lists(st.sampled_from(ALPHABET), min_size=12, max_size=12).map(
    lambda s: "JCD-" + "-".join("".join(s[i:i + 4]) for i in (0, 4, 8)))
hex64 = st.text(HEX, min_size=64, max_size=64)
printable = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn", "Zs")),
                    min_size=1, max_size=40)
base64_text = st.binary(min_size=1, max_size=600).map(lambda b: __import__("base64").b64encode(b).decode())
recipient = st.fixed_dictionaries({"key_id": hex64, "algorithm": st.just("RSA-OAEP-SHA256"),
                                   "sealed_secret": base64_text})


@st.composite
def valid_headers(draw) -> dict:
    recipients = draw(st.lists(recipient, max_size=3))
    header = {
        "format": FORMAT,
        "bundle_id": draw(bundle_ids),
        "created": draw(st.datetimes(timezones=st.just(__import__("datetime").timezone.utc))).isoformat(),
        "tool": {"name": "jcdiag", "version": draw(printable)},
        "case_id": draw(st.none() | printable),
        "recipients": recipients,
        "password_protected": not recipients,
        "payload": {"name": "payload.7z", "sha256": draw(hex64), "size": draw(st.integers(0, 2 ** 40)),
                    "compression": draw(printable), "encryption": draw(printable)},
    }
    if draw(st.booleans()):                                    # unknown extra fields are tolerated
        header["future_field"] = draw(finite_json)
    return header


FIELDS = ["format", "bundle_id", "created", "tool", "tool.name", "tool.version", "case_id", "recipients",
          "recipients.0", "recipients.0.key_id", "recipients.0.algorithm", "recipients.0.sealed_secret",
          "password_protected", "payload", "payload.name", "payload.sha256", "payload.size",
          "payload.compression", "payload.encryption"]


def _replace(header: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = header
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_headers())
def test_valid_headers_round_trip(header):
    data = json.dumps(header).encode()
    assert parse_header(data) == header


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(valid_headers().filter(lambda h: h["recipients"]), st.sampled_from(FIELDS), json_values)
def test_any_json_in_any_field_is_a_header_or_a_header_error(header, field, value):
    hostile = copy.deepcopy(header)
    _replace(hostile, field, value)
    try:
        result = parse_header(json.dumps(hostile).encode())
    except HeaderError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    # accepted: then the value really fits the schema, and nothing else changed
    assert result == hostile and isinstance(result["bundle_id"], str)
    assert isinstance(result["payload"]["size"], int) and not isinstance(result["payload"]["size"], bool)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_header_or_a_header_error(data):
    try:
        parse_header(data)
    except HeaderError:
        pass


@settings(max_examples=300)
@given(json_values)
def test_any_json_document_is_a_header_or_a_header_error(value):
    with pytest.raises(HeaderError):
        parse_header(json.dumps(value).encode())


@pytest.mark.parametrize("fmt", ["jcdiag-bundle/2", "", "other"])
def test_another_format_is_unsupported_not_invalid(fmt):
    with pytest.raises(UnsupportedFormat) as err:
        validate_header({"format": fmt, "bundle_id": "../x"})
    assert err.value.kind == "unsupported_format"


def test_depth_size_duplicates_and_constants_are_bounded():
    with pytest.raises(HeaderError, match="nested deeper"):
        load_json(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(HeaderError, match="nested deeper"):
        load_json(json.dumps({"a": [[[[]]]] * 2, "b": json.loads("[" * (MAX_DEPTH) + "]" * MAX_DEPTH)}).encode())
    load_json(json.dumps(json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))).encode())
    with pytest.raises(HeaderError, match="more than"):
        load_json(b" " * (HEADER_LIMIT + 1))
    with pytest.raises(HeaderError, match="twice"):
        load_json(b'{"a": 1, "a": 2}')
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(HeaderError):
            load_json(b'{"a": ' + constant + b"}")
    with pytest.raises(HeaderError):
        load_json(b'{"a": ' + b"9" * 5000 + b"}")                    # beyond int's digit limit


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["bundle_id", "sha256", "size", "case_id", "x"]), json_values))
def test_intake_records_are_checked_or_refused(record):
    try:
        checked = check_record(record, "JCD-AAAA-BBBB-CCCC")
    except HeaderError:
        return
    assert len(checked["sha256"]) == 64 and isinstance(checked["size"], int)
