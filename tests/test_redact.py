"""Secret scrubbing: golden corpus, property tests, streaming edge cases, pseudonyms."""
from __future__ import annotations

import base64
import codecs
import ipaddress
import json
import os
import re
import stat
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import redact as redact_mod
from collector.pseudonym import Pseudonymizer, PseudonymMapError
from collector.redact import (MAX_LINE, RULESET_VERSION, RedactionError, Redactor,
                              looks_binary, utf16_encoding)
from collector.redact_rules import RuleError, RuleSet, default_rules

FIXTURES = Path(__file__).parent / "fixtures" / "redaction"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text("utf-8"))
CHUNKINGS = [1, 7, 4096, None]          # None: the whole file in one feed()


def scrub_text(data: bytes, chunk: int | None, redactor: Redactor | None = None,
               name: str = "a.log") -> tuple[bytes, dict[str, int]]:
    redactor = redactor or Redactor()
    scrubber = redactor.text_stream(name)
    if chunk is None:
        out = scrubber.feed(data)
    else:
        out = b"".join(scrubber.feed(data[i:i + chunk]) for i in range(0, len(data), chunk))
    out += scrubber.close()
    return out, dict(scrubber.hits)


def scrub_chunks(data: bytes, sizes: list[int], redactor: Redactor | None = None, name: str = "x") -> bytes:
    scrubber = (redactor or Redactor()).text_stream(name)
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(scrubber.feed(data[pos:pos + size]))
        pos += size
        i += 1
    out.append(scrubber.close())
    return b"".join(out)


def scrub_fixture(name: str, chunk: int | None, redactor: Redactor) -> bytes:
    data = (FIXTURES / name).read_bytes()
    fmt = EXPECTED[name]["format"]
    if fmt == "text":
        return scrub_text(data, chunk, redactor, name)[0]
    return redactor.structured(name, data, fmt)


# ----------------------------------------------------------------------------- golden corpus

@pytest.mark.parametrize("chunk", CHUNKINGS, ids=lambda c: f"chunk{c or 'all'}")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_corpus_no_secret_survives(name, chunk):
    expected = EXPECTED[name]
    redactor = Redactor()
    out = scrub_fixture(name, chunk, redactor).decode("utf-8")
    for secret in expected["secrets"]:
        assert secret not in out, f"{name}: secret {secret[:12]}... survived"
        assert secret[4:] not in out
    for kept in expected["keep"]:
        assert kept in out, f"{name}: {kept!r} was lost"
    assert redactor.report()["artifacts"][name]["hits"] == expected["hits"]
    assert redactor.artifact_hits(name) == expected["hits"]


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if EXPECTED[n]["format"] == "text"))
def test_golden_corpus_same_output_for_every_chunking(name):
    data = (FIXTURES / name).read_bytes()
    outputs = {chunk: scrub_text(data, chunk)[0] for chunk in CHUNKINGS + [2, 3, 61, 1000]}
    assert len(set(outputs.values())) == 1


def test_golden_corpus_report_for_the_whole_bundle():
    redactor = Redactor()
    for name in sorted(EXPECTED):
        scrub_fixture(name, 4096, redactor)
    report = redactor.report()
    assert report["ruleset_version"] == RULESET_VERSION
    totals: dict[str, int] = {}
    for exp in EXPECTED.values():
        for rule, count in exp["hits"].items():
            totals[rule] = totals.get(rule, 0) + count
    assert report["totals"] == totals
    assert report["total_redactions"] == sum(totals.values())
    assert [n for n, a in report["artifacts"].items() if "transcoded_from" in a] == ["jcUpdate.log"]
    assert report["artifacts"]["jcUpdate.log"]["transcoded_from"] == "utf-16-le"
    assert report["structured_fallback"] == {}
    assert report["pseudonymization"] == {"enabled": False}
    ids = {r["id"] for r in report["rules"]}
    assert set(totals) <= ids
    assert all(r["description"] and r["version"] for r in report["rules"])
    json.dumps(report)                                    # it is redaction.json


def test_utf16_msi_log_is_transcoded_to_utf8():
    redactor = Redactor()
    out = scrub_fixture("jcUpdate.log", 7, redactor)
    text = out.decode("utf-8")
    assert not out.startswith(codecs.BOM_UTF16_LE) and "\x00" not in text
    assert "JCINSTALLERARGUMENTS=-k [REDACTED:connect-key] /VERYSILENT" in text
    assert "Its value is '-k [REDACTED:connect-key] /VERYSILENT" in text
    assert text.count("\r\n") == text.count("\n")        # line endings kept


# ----------------------------------------------------------------------------- false positives

AGENT_LOG_WITHOUT_SECRETS = b"""\
2024-05-14 10:31:58 [INFO] JumpCloud agent version 2.14.0 starting (pid 1184) on host ubuntu-2204
2024-05-14 10:31:58 [INFO] systemKey=5e30c0b9890a7a4766268b60 certuuid=6ca1d31c01a045175810db7ec81169fa
2024-05-14 10:31:58 [DEBUG] {"clientKey":"/opt/jc/client.key","clientCrt":"/opt/jc/client.crt","caCrt":"/opt/jc/ca.crt"}
2024-05-14 10:32:03 [INFO] Applying policy 9a46a632-471d-41b3-baf4-c0f1eb743c8f (Disable USB storage) result=success
2024-05-14 10:32:03 [DEBUG] Downloaded /opt/jc/policies/9a46a632-471d-41b3-baf4-c0f1eb743c8f/payload.sh sha256=5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9
2024-05-14 10:32:03 [DEBUG] git commit 3f786850e387550fdab836ed7e6dc881de23001b sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709
2024-05-14 10:32:04 [INFO] Token refreshed, expires in 3600s; next token check at 2024-05-14T11:32:04Z
2024-05-14 10:32:04 [INFO] password policy updated: minLength=12 passwordExpirationDays=90 passwordless=false
2024-05-14 10:32:05 [INFO] Loaded private key from /opt/jc/client.key (rsa 2048), public key fingerprint SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
2024-05-14 10:32:05 [WARN] open /etc/ssl/private/server.key: permission denied
2024-05-14 10:32:05 [INFO] Opening registry key HKLM\\SOFTWARE\\JumpCloud\\JumpCloud Agent value ConfigFile
2024-05-14 10:32:06 [INFO] GET https://console.jumpcloud.com/api/v2/systems/5e30c0b9890a7a4766268b60/memberof 200 OK in 84ms
2024-05-14 10:32:06 [INFO] user alice@example.com logged in from 192.168.1.20 via ssh (session 4f1c)
2024-05-14 10:32:06 [DEBUG] env PWD=/root OLDPWD=/opt/jc HOME=/root TOKEN_REFRESH_INTERVAL=3600 token_type=Bearer
2024-05-14 10:32:07 [DEBUG] curl -k https://127.0.0.1:8443/health -> 200
2024-05-14 10:32:07 [INFO] AD sync: bypass=true compass heading 270, secret_name=jc-agent-secret keyId=abcd1234
2024-05-14 10:32:08 [INFO] Wrote C:\\Windows\\Temp\\jcagent.log.prev (5242880 bytes), 2024-05-14 10:32:08.123456+00:00
2024-05-14 10:32:08 [INFO] --token-file /etc/jcdiag/token --password-file /etc/jcdiag/pw ssh_key=/home/alice/.ssh/id_ed25519
2024-05-14 10:32:09 [DEBUG] oauth token_type=Bearer passwordless=true publicKey=AAAAB3NzaC1yc2EAAAADAQAB install key: missing
"""


def test_realistic_agent_log_without_secrets_is_unchanged():
    for chunk in CHUNKINGS:
        out, hits = scrub_text(AGENT_LOG_WITHOUT_SECRETS, chunk)
        assert hits == {}
        assert out == AGENT_LOG_WITHOUT_SECRETS


def test_non_utf8_bytes_are_preserved():
    data = b"caf\xe9 \xff\xfe\x80 binary-ish latin-1 line\npassword=s3cr\xe9t99 rest \xc3\x28\n\x00\x01\x02 tail"
    out, hits = scrub_text(data, 3)
    assert out == b"caf\xe9 \xff\xfe\x80 binary-ish latin-1 line\npassword=[REDACTED:password] rest \xc3\x28\n\x00\x01\x02 tail"
    assert hits == {"password": 1}


# ----------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("line, expected", [
    (b"JCINSTALLERARGUMENTS=\"-k jcc_eyJwdWJsaWNLaWNrc3RhcnRVcmwiOiJodHRwczovL2tp /VERYSILENT\"",
     b"JCINSTALLERARGUMENTS=\"-k jcc_\xe2\x80\xa6[REDACTED:connect-key] /VERYSILENT\""),
    (b"Authorization: Bearer abcdefghij.klmnop", b"Authorization: Bearer [REDACTED:bearer-token]"),
    (b"Authorization: Basic YWRtaW46aHVudGVyMg==", b"Authorization: Basic [REDACTED:basic-auth]"),
    (b"Proxy-Authorization: NTLM TlRMTVNTUAABAAAAB4IIog==", b"Proxy-Authorization: NTLM [REDACTED:authorization]"),
    (b"key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     b"key AKIA\xe2\x80\xa6[REDACTED:aws-access-key-id] secret [REDACTED:aws-secret-key]"),
    (b"db=postgres://app:Pa55w0rd@db.internal:5432/app", b"db=postgres://app:[REDACTED:url-credentials]@db.internal:5432/app"),
    (b"ftp://user:p@ss@host/x", b"ftp://user:[REDACTED:url-credentials]@host/x"),
    (b"{\"password\": \"\", \"token\": null, \"secret\": \"********\"}", None),
    (b"mysql --password hunter2 -u root", b"mysql --password [REDACTED:password] -u root"),
    (b"<Password>p4ss w0rd</Password>", b"<Password>[REDACTED:password]</Password>"),
    (b"{\\\"systemToken\\\":\\\"a1b2c3d4e5\\\"}", b"{\\\"systemToken\\\":\\\"[REDACTED:system-token]\\\"}"),
    (b"map[password:abc123 user:bob]", b"map[password:[REDACTED:password] user:bob]"),
    (b"GET /cb?code=1&access_token=abc.def&state=x", b"GET /cb?code=1&access_token=[REDACTED:token]&state=x"),
    (b"Using connect key 0123456789abcdef0123456789abcdef01234567 now",
     b"Using connect key [REDACTED:connect-key] now"),
    (b"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIB\\n-----END EC PRIVATE KEY-----\\n",
     b"-----BEGIN EC PRIVATE KEY-----[REDACTED:pem-private-key]-----END EC PRIVATE KEY-----\\n"),
    (b"password=[REDACTED:password] again", None),
    (b'sudo ./install -JumpCloudConnectKey "abcdefabcdefabcdefabcdefabcdefabcdefabcd"',
     b'sudo ./install -JumpCloudConnectKey "[REDACTED:connect-key]"'),
    (b'{"Authorization": "Digest username=\\"bob\\", response=\\"6629fae4\\""}',
     b'{"Authorization": "Digest [REDACTED:authorization]"}'),
    (b"headers map[Authorization:[Bearer tok123456789] X-Api-Key:[abcdef]]",
     b"headers map[Authorization:[Bearer [REDACTED:bearer-token]] X-Api-Key:[[REDACTED:api-key]]]"),
    (b"Cookie: sid=abc123; theme=dark   client_secret='00000000'", b"Cookie: [REDACTED:cookie]"),
    (b"installer -k eyJ00000000000000000.0000000000.00000000 -q",
     b"installer -k eyJ\xe2\x80\xa6[REDACTED:connect-key] -q"),
    (b"bearer aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     b"bearer [REDACTED:bearer-token] = [REDACTED:aws-secret-key]"),
])
def test_redacted_shapes(line, expected):
    out, _ = scrub_text(line + b"\n", 5)
    assert out == (expected if expected is not None else line) + b"\n"


def test_short_secrets_keep_nothing_long_ones_at_most_four_characters():
    out, _ = scrub_text(b"api_key=jcc_short password=eyJabc\nconnectKey=jcc_AAAABBBBCCCCDDDDEEEE\n", None)
    assert out == (b"api_key=[REDACTED:api-key] password=[REDACTED:password]\n"
                   b"connectKey=jcc_\xe2\x80\xa6[REDACTED:connect-key]\n")


def test_keywords_are_redacted_case_insensitively():
    redactor = Redactor(keywords=["ProjectX", "acme-internal"])
    out, hits = scrub_text(b"deploying projectx to ACME-INTERNAL cluster (PROJECTX)\n", 4, redactor)
    assert out == b"deploying [REDACTED:keyword] to [REDACTED:keyword] cluster ([REDACTED:keyword])\n"
    assert hits == {"keyword": 3}


# ----------------------------------------------------------------------------- streaming

def test_secret_split_at_every_position_across_two_feeds():
    line = (b"2024-05-14 10:32:00 [DEBUG] header x-connect-key: 0123456789abcdef0123456789abcdef01234567 "
            b"and Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl\n")
    whole, _ = scrub_text(line, None)
    assert b"0123456789abcdef" not in whole and b"c2lnbmF0dXJl" not in whole
    for cut in range(1, len(line)):
        scrubber = Redactor().text_stream("x")
        out = scrubber.feed(line[:cut]) + scrubber.feed(line[cut:]) + scrubber.close()
        assert out == whole, cut


def test_incomplete_last_line_is_held_back_until_close():
    scrubber = Redactor().text_stream("x")
    assert scrubber.feed(b"first line\npassword=abc") == b"first line\n"
    assert scrubber.feed(b"def") == b""
    assert scrubber.close() == b"password=[REDACTED:password]"
    assert scrubber.hits == {"password": 1}


def test_pem_block_across_chunks_goes_whole_and_the_log_goes_on():
    body = [base64.b64encode(os.urandom(48)).decode() for _ in range(20)]
    text = ("before\n-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(body) +
            "\n-----END OPENSSH PRIVATE KEY-----\nafter 5feceb66ffc86f38d952786c6d696c79\n").encode()
    for chunk in (1, 13, 64, None):
        out, hits = scrub_text(text, chunk)
        assert out == (b"before\n-----BEGIN OPENSSH PRIVATE KEY-----[REDACTED:pem-private-key]\n"
                       b"-----END OPENSSH PRIVATE KEY-----\nafter 5feceb66ffc86f38d952786c6d696c79\n")
        assert hits == {"pem-private-key": 1}


def test_truncated_pem_block_does_not_swallow_the_rest_of_the_log():
    body = [base64.b64encode(os.urandom(48)).decode() for _ in range(5)]
    text = ("-----BEGIN PRIVATE KEY-----\n" + "\n".join(body) +
            "\n2024-05-14 10:32:09 [INFO] Heartbeat ok in 84ms\n2024-05-14 10:33:09 [INFO] Heartbeat ok\n").encode()
    out, _ = scrub_text(text, 10)
    assert out == (b"-----BEGIN PRIVATE KEY-----[REDACTED:pem-private-key]\n"
                   b"2024-05-14 10:32:09 [INFO] Heartbeat ok in 84ms\n2024-05-14 10:33:09 [INFO] Heartbeat ok\n")


def test_line_longer_than_max_line_is_cut_safely_and_memory_stays_bounded():
    secret = b"0123456789abcdef0123456789abcdef01234567"
    unit = b"field=value x-connect-key: " + secret + b" "
    line = unit * (3 * MAX_LINE // len(unit)) + b"\n"
    scrubber = Redactor().text_stream("long.log")
    out = []
    peak = 0
    for i in range(0, len(line), 65536):
        out.append(scrubber.feed(line[i:i + 65536]))
        peak = max(peak, scrubber._size)
    out.append(scrubber.close())
    result = b"".join(out)
    assert secret not in result
    assert result.count(b"[REDACTED:connect-key]") == line.count(secret) == scrubber.hits["connect-key"]
    assert peak <= MAX_LINE + 65536
    assert result == scrub_text(line, None)[0]


def test_memory_stays_bounded_whatever_the_input_size():
    import tracemalloc

    quiet = b"2024-05-14 10:32:00 [INFO] Heartbeat ok in 84ms sha256=5feceb66ffc86f38d952786c6d696c79c2dbc239dd\n"
    block = (quiet * 99 + b"2024-05-14 10:32:00 [DEBUG] password=hunter2\n") * 100     # ~1 MB
    scrubber = Redactor().text_stream("big.log")
    tracemalloc.start()
    try:
        for _ in range(12):                     # 12 MB through 1 MB feeds
            scrubber.feed(block)
        scrubber.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scrubber.hits == {"password": 1200}
    assert peak < 6 * len(block)                 # a few chunk-sized buffers, not the input


def test_long_line_without_separators_is_cut_where_no_secret_is():
    blob = base64.b64encode(os.urandom(3 * MAX_LINE // 4 * 3))     # 3 MiB, no separators at all
    line = b"data=" + blob + b" jcc_" + b"A" * 40 + b"\n"
    out, hits = scrub_text(line, 1 << 16)
    assert hits == {"connect-key": 1} and b"A" * 40 not in out
    assert out.startswith(b"data=" + blob[:1000])


def test_uncuttable_line_fails_closed(monkeypatch):
    monkeypatch.setattr(redact_mod.Matcher, "scan",
                        lambda self, orig, state, extents=None, argv_lines=False: extents.append((0, len(orig))) or []
                        if extents is not None else [])
    scrubber = Redactor().text_stream("x")
    with pytest.raises(RedactionError):
        scrubber.feed(b"x" * (MAX_LINE + 10))


def test_fail_closed_api_drops_the_artifact_from_the_report():
    redactor = Redactor()
    scrubber = redactor.text_stream("logs/a.log")
    scrubber.feed(b"password=abc\n")
    scrubber.close()
    redactor.failed("logs/a.log", "write error")
    redactor.skipped_binary("logs/core.bin")
    report = redactor.report()
    assert "logs/a.log" not in report["artifacts"]
    assert report["failed"] == [{"artifact": "logs/a.log", "reason": "write error"}]
    assert report["binary_skipped"] == ["logs/core.bin"]
    assert report["totals"] == {}


def test_feed_after_close_raises_and_a_second_close_records_nothing():
    redactor = Redactor()
    scrubber = redactor.text_stream("x")
    scrubber.feed(b"password=abc\n")
    scrubber.close()
    assert scrubber.close() == b""
    assert redactor.report()["artifacts"]["x"] == {"hits": {"password": 1}}
    with pytest.raises(ValueError):
        scrubber.feed(b"more")


# ----------------------------------------------------------------------------- structured

def test_structured_json_keeps_layout_and_identifiers():
    conf = (FIXTURES / "jcagent.conf").read_bytes()
    redactor = Redactor()
    out = redactor.structured("jcagent.conf", conf, "json")
    doc = json.loads(out)
    original = json.loads(conf)
    assert doc["systemToken"] == "[REDACTED:system-token]"
    assert doc["userMgmt"]["local_ldap_bind_pwd"] == "[REDACTED:ldap-bind-password]"
    for key in ("systemKey", "certuuid", "clientKey", "clientCrt", "caCrt", "heartbeatInterval"):
        assert doc[key] == original[key]
    assert list(doc) == list(original)
    assert len(out.splitlines()) == len(conf.splitlines())


def test_structured_json_secret_containers_and_scalars():
    data = b'{\n  "credentials": {"user": "svc", "pin": 1234},\n  "apiKeys": ["k1k1k1", "k2k2k2"],\n' \
           b'  "password": false,\n  "nested": {"client_secret": "\\u0073ecret!"}\n}\n'
    redactor = Redactor()
    out = redactor.structured("x.json", data, "json")
    doc = json.loads(out)
    assert doc["credentials"] == {"user": "[REDACTED:secret]", "pin": "[REDACTED:secret]"}
    assert doc["password"] is False
    assert doc["nested"]["client_secret"] == "[REDACTED:secret]"
    assert b"k1k1k1" not in out and redactor.report()["artifacts"]["x.json"]["hits"]["secret"] == 3


def test_structured_invalid_json_falls_back_to_text_and_says_so():
    data = b'{"systemToken": "abc123", broken\n'
    redactor = Redactor()
    out = redactor.structured("bad.json", data, "json")
    assert out == b'{"systemToken": "[REDACTED:system-token]", broken\n'
    assert "not valid JSON" in redactor.report()["structured_fallback"]["bad.json"]


def test_structured_ini_value_with_spaces_and_utf16_bom():
    data = codecs.BOM_UTF16_LE + "[proxy]\r\npassword = correct horse battery\r\nuser = bob\r\n".encode("utf-16-le")
    redactor = Redactor()
    out = redactor.structured("p.ini", data, "ini")
    assert out == b"[proxy]\r\npassword = [REDACTED:password]\r\nuser = bob\r\n"
    assert redactor.report()["artifacts"]["p.ini"]["transcoded_from"] == "utf-16-le"


# ----------------------------------------------------------------------------- sniffing

@pytest.mark.parametrize("sample, binary", [
    (b"", False),
    (b"2024-05-14 10:32:00 [INFO] hello\n" * 100, False),
    (codecs.BOM_UTF16_LE + "MSI (c) log line\r\n".encode("utf-16-le") * 50, False),
    ("plain utf-16le without bom\r\n".encode("utf-16-le") * 50, False),
    ("utf-16be\n".encode("utf-16-be") * 50, False),
    (b"\x00" * 4096 + b"log continues after a copytruncate hole\n" * 20, False),
    (b"caf\xe9 latin-1 log\n" * 100, False),
    (b"\x1b[32mINFO\x1b[0m colored log\n" * 100, False),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8, True),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + os.urandom(2000), True),
    (bytes(range(1, 32)) * 100, True),
])
def test_looks_binary(sample, binary):
    assert looks_binary(sample) is binary


def test_bomless_utf16_log_is_transcoded_by_the_scrubber():
    data = "line one\npassword=hunter22\n".encode("utf-16-le")
    redactor = Redactor()
    out, hits = scrub_text(data, 3, redactor, "w.log")
    assert out == b"line one\npassword=[REDACTED:password]\n" and hits == {"password": 1}
    assert utf16_encoding(data) == "utf-16-le"
    assert redactor.report()["artifacts"]["w.log"] == {"hits": {"password": 1}, "transcoded_from": "utf-16-le"}


# ----------------------------------------------------------------------------- rules data

def test_ruleset_version_and_rules_are_data_in_one_place():
    doc = json.loads(Path(redact_mod.__file__).with_name("data").joinpath("redaction_rules.json").read_text())
    assert RULESET_VERSION == doc["version"] == default_rules().version
    for rule in doc["rules"]:
        assert rule["id"] and rule["description"] and rule["version"] and rule["match"]


@pytest.mark.parametrize("doc, message", [
    ({"version": "1", "rules": []}, "non-empty list"),
    ({"version": "1", "rules": [{"id": "x", "description": "d", "version": "1",
                                 "match": [{"type": "regex", "triggers": ["ab"], "pattern": "zz"}]}]}, "begin with"),
    ({"version": "1", "rules": [{"id": "x", "description": "d", "version": "1",
                                 "match": [{"type": "regex", "triggers": ["ab"], "pattern": "ab("}]}]}, "compile"),
    ({"version": "1", "rules": [{"id": "X Y", "description": "d", "version": "1", "match": []}]}, "kebab"),
    ({"version": "1", "keep_prefixes": ["jcc_x"], "rules": [{"id": "x", "description": "d", "version": "1",
      "match": [{"type": "key", "key_triggers": ["pass"], "keys": ["pass"]}]}]}, "at most 4"),
])
def test_bad_rules_are_refused_with_a_clear_error(doc, message):
    with pytest.raises(RuleError, match=message):
        RuleSet.from_dict(doc)


def test_custom_rules_from_a_file(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"version": "t.1", "rules": [
        {"id": "ticket", "description": "internal ticket tokens", "version": "t.1",
         "match": [{"type": "regex", "triggers": ["tkt-"], "pattern": "tkt-[0-9a-f]{8}"}]}]}))
    redactor = Redactor(rules=path)
    out, hits = scrub_text(b"see TKT-DEADBEEF password=x\n", 2, redactor)
    assert out == b"see [REDACTED:ticket] password=x\n" and hits == {"ticket": 1}
    assert redactor.report()["ruleset_version"] == "t.1"


# ----------------------------------------------------------------------------- property test

TEXT_ALPHABET = "ghijklmnopqrstuvwxyz ,.:;()[]=_-/"      # no hex letters, digits or capitals
HEX = "0123456789abcdef"
B64 = string.ascii_letters + string.digits + "+/"
PW = string.ascii_uppercase + string.digits + "!#$%^*+~"


from collector.redact_rules import is_variable  # noqa: E402

PLACEHOLDERS = default_rules().placeholder_values      # "null", "undefined"...: never secrets


def _s(alphabet: str, lo: int, hi: int):
    """Secrets of ``alphabet``: never a placeholder word or a variable reference ($DB_PASS),
    which by design are not secrets."""
    return st.text(alphabet=alphabet, min_size=lo, max_size=hi).filter(
        lambda v: v.lower() not in PLACEHOLDERS and not is_variable(v.encode()))


def _jwt(parts):
    return "eyJ" + parts[0] + "." + parts[1] + "." + parts[2]


# kind -> (strategy of the secret, how it appears in a log line)
PLANTS = {
    "password": (_s(PW, 8, 24), lambda s: f"password={s}"),
    "password-json": (_s(PW, 8, 24), lambda s: f'{{"Password": "{s}"}}'),
    "password-flag": (_s(PW, 8, 24), lambda s: f"--password {s}"),
    "x-connect-key": (_s(HEX, 40, 40), lambda s: f"--header 'x-connect-key: {s}'"),
    "install-arg": (_s(HEX, 40, 40), lambda s: f'JCINSTALLERARGUMENTS="-k {s} /VERYSILENT"'),
    "jcc": (_s(B64, 20, 200), lambda s: f"jcc_{s}"),
    "system-token": (_s(HEX + "-", 36, 36), lambda s: f'"systemToken":"{s}"'),
    "x-api-key": (_s(HEX, 40, 40), lambda s: f"x-api-key: {s}"),
    "ldap": (_s(B64, 20, 40), lambda s: f"local_ldap_bind_pwd={s}"),
    "bearer": (_s(B64 + "-_.", 16, 200), lambda s: f"Authorization: Bearer {s}"),
    "basic": (_s(B64, 8, 60), lambda s: f"Authorization: Basic {s}"),
    "url": (_s(PW, 8, 24), lambda s: f"https://svc:{s}@proxy.example.com:3128/x"),
    "jwt": (st.tuples(_s(B64[:-2] + "_-", 10, 80), _s(B64[:-2] + "_-", 10, 200), _s(B64[:-2] + "_-", 8, 80)),
            lambda p: _jwt(p)),
    "aws-id": (_s(string.ascii_uppercase + string.digits, 16, 16), lambda s: f"AKIA{s}"),
    "aws-pair": (_s(B64, 40, 40), lambda s: f"AKIAIOSFODNN7EXAMPLE {s}"),
    "aws-secret": (_s(B64, 40, 40), lambda s: f"aws_secret_access_key = {s}"),
    "token": (_s(B64 + "-_", 12, 80), lambda s: f"refresh_token: {s}"),
    "secret": (_s(PW, 8, 40), lambda s: f"client_secret='{s}'"),
    # A generic key's value that starts like a path (/etc/...) is a path by design: not planted.
    "key": (_s(B64, 16, 60).filter(lambda v: not v.startswith("/")), lambda s: f"encryptionKey={s}"),
    "cookie": (_s(B64, 16, 60), lambda s: f"Cookie: sid={s}; theme=dark"),
    "pem": (st.lists(_s(B64, 64, 64), min_size=1, max_size=8),
            lambda body: "\n-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END RSA PRIVATE KEY-----\n"),
}


def _secret_parts(kind: str, value) -> list[str]:
    if kind == "pem":
        return list(value)
    if kind == "jwt":
        return [part for part in value if part]
    return [value]


_MARKER = re.compile(r"(?:jcc_|eyJ|AKIA|ASIA)?\u2026?\[REDACTED:[a-z0-9-]+\]")


# Words that appear around secrets in real logs, mixed into the random text.
VOCABULARY = ["./install", "/opt/jc/", "install", "connect", "api", "key", "token", "secret", "password",
              "auth", "bearer", "-k", "--header", "x-api-key:", "=", ":", '"', "'", "data", "access", "private",
              "session", "systemKey", "clientKey", "C:\\Windows\\Temp\\", "https://", "@", "-----", "\\"]
_VOCAB_TEXT = " ".join(VOCABULARY)


def _leaked(secret: str, out: str, filler: str = "") -> bool:
    """The secret, or any 8 of its characters that could not come from the random text
    (``filler``: the input without the planted secrets, which may hold the same word)."""
    out = _MARKER.sub("#", out)
    if out.count(secret) > filler.count(secret) and secret not in _VOCAB_TEXT:  # "clientKe": clientKey
        return True
    for i in range(0, max(1, len(secret) - 7)):
        window = secret[i:i + 8]
        if (len(window) == 8 and any(c not in TEXT_ALPHABET for c in window)
                and window not in _VOCAB_TEXT and window in out):
            return True
    return False


def _text_line():
    token = st.one_of(_s(TEXT_ALPHABET, 0, 12), st.sampled_from(VOCABULARY))
    return st.lists(token, max_size=8).map(" ".join)


@st.composite
def log_with_secrets(draw):
    lines = draw(st.lists(_text_line(), min_size=1, max_size=25))
    planted = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(sorted(PLANTS)))
        strategy, render = PLANTS[kind]
        value = draw(strategy)
        index = draw(st.integers(0, len(lines) - 1))
        lines[index] = f"{lines[index]} {draw(_text_line())} {render(value)} {draw(_text_line())}"
        planted.append((kind, value))
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))
    sizes = draw(st.lists(st.integers(1, 300), min_size=1, max_size=6))
    return text.encode(), planted, sizes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_with_secrets())
def test_property_planted_secrets_never_survive_any_chunking(case):
    data, planted, sizes = case
    out = scrub_chunks(data, sizes).decode("utf-8")
    filler = data.decode("utf-8")
    for kind, value in planted:
        filler = filler.replace(PLANTS[kind][1](value), " ", 1)
    for kind, value in planted:
        for part in _secret_parts(kind, value):
            assert not _leaked(part, out, filler), f"{kind} secret {part!r} survived in {out!r}"
    assert scrub_chunks(data, [len(data) or 1]) == out.encode()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 500), min_size=1, max_size=5))
def test_property_any_bytes_same_result_for_any_chunking(data, sizes):
    assert scrub_chunks(data, sizes) == scrub_chunks(data, [len(data) or 1])


# ----------------------------------------------------------------------------- pseudonyms

def pseudo_scrub(p: Pseudonymizer, data: bytes, name: str = "a.log") -> bytes:
    return scrub_text(data, 5, Redactor(pseudonymizer=p), name)[0]


def test_pseudonyms_consistent_across_artifacts_and_secrets_still_go():
    p = Pseudonymizer(hostnames=["DESKTOP-7GH2K1"], usernames=["alice"], domains=["ad.acme.corp"])
    redactor = Redactor(pseudonymizer=p)
    a = scrub_text(b"login alice from 10.20.30.40 on DESKTOP-7GH2K1.ad.acme.corp password=x1y2z3\n", 3, redactor, "a")[0]
    b = scrub_text(b"ALICE at 10.20.30.40; host desktop-7gh2k1, mail alice@acme.corp\n", 8, redactor, "b")[0]
    assert b"alice" not in a.lower() + b.lower() and b"10.20.30.40" not in a + b and b"7gh2k1" not in (a + b).lower()
    assert b"[REDACTED:password]" in a
    user, ip, host = p.username("alice").encode(), p.ipv4("10.20.30.40").encode(), p.hostname("desktop-7gh2k1").encode()
    assert user in a and user in b and ip in a and ip in b and host in b
    assert p.hostname("DESKTOP-7GH2K1.ad.acme.corp").encode() in a
    report = redactor.report()
    assert report["pseudonymization"]["enabled"] is True
    assert report["pseudonymization"]["counts"]["ipv4"] == 2
    assert "10.20.30.40" not in json.dumps(report) and "alice" not in json.dumps(report)


def test_ipv4_subnet_relations_are_kept():
    p = Pseudonymizer()
    a, b, c = p.ipv4("10.1.2.3"), p.ipv4("10.1.2.77"), p.ipv4("10.1.9.3")
    assert a.rsplit(".", 1)[0] == b.rsplit(".", 1)[0] and a != b
    assert a.split(".")[:2] == c.split(".")[:2] and a.rsplit(".", 1)[0] != c.rsplit(".", 1)[0]
    assert a.startswith("10.") and ipaddress.ip_address(a).is_private
    assert p.ipv4("192.168.7.7").startswith("192.168.") and 16 <= int(p.ipv4("172.20.1.1").split(".")[1]) <= 31
    pub = [p.ipv4(f"8.8.{i}.8") for i in range(50)]
    assert len(set(pub)) == 50 and len({x.rsplit(".", 2)[0] for x in pub}) == 1
    assert all(not ipaddress.ip_address(x).is_private for x in pub)
    for kept in ("127.0.0.1", "0.0.0.0", "255.255.255.0", "255.255.255.255", "224.0.0.251"):
        assert p.ipv4(kept) == kept


def test_ipv6_prefixes_kept_and_special_addresses_untouched():
    p = Pseudonymizer()
    a, b = p.ipv6("2001:db8:85a3:1::8a2e:370:7334"), p.ipv6("2001:db8:85a3:1::1")
    na, nb = ipaddress.IPv6Network(a + "/64", strict=False), ipaddress.IPv6Network(b + "/64", strict=False)
    assert na == nb and a != "2001:db8:85a3:1::8a2e:370:7334" and ipaddress.ip_address(a) in ipaddress.ip_network("2000::/3")
    ll = p.ipv6("fe80::1c2d:3e4f:5a6b:7c8d")
    assert ll.startswith("fe80::") and ll != "fe80::1c2d:3e4f:5a6b:7c8d"
    assert p.ipv6("fd12:3456:789a::1").startswith("fd")
    assert p.ipv6("::1") == "::1" and p.ipv6("ff02::1") == "ff02::1"
    out = pseudo_scrub(p, b"peer [2001:db8:85a3:1::1]:443 link fe80::1c2d:3e4f:5a6b:7c8d%eth0 12:30:45 std::string\n")
    assert out == f"peer [{b}]:443 link {ll}%eth0 12:30:45 std::string\n".encode()


def test_mac_keeps_vendor_part_and_case():
    p = Pseudonymizer()
    out = pseudo_scrub(p, b"en0 ether 3c:22:fb:12:34:56 wifi 3C-22-FB-12-34-56 bcast ff:ff:ff:ff:ff:ff\n")
    mac = p.mac("3c:22:fb:12:34:56")
    assert mac.startswith("3c:22:fb:") and mac != "3c:22:fb:12:34:56"
    assert out == f"en0 ether {mac} wifi {mac.upper().replace(':', '-')} bcast ff:ff:ff:ff:ff:ff\n".encode()


def test_domains_label_by_label_public_ones_kept():
    p = Pseudonymizer()
    a, b = p.domain("dc01.ad.acme.com"), p.domain("dc02.ad.acme.com")
    assert a.endswith(".com") and a.split(".", 1)[1] == b.split(".", 1)[1] and a != b
    assert p.domain("www.acme.co.uk").endswith(".co.uk")
    out = pseudo_scrub(p, b"GET https://console.jumpcloud.com/api from dc01.ad.acme.com file jcagent.log com.jumpcloud.darwin-agent\n")
    assert out == f"GET https://console.jumpcloud.com/api from {a} file jcagent.log com.jumpcloud.darwin-agent\n".encode()


def test_usernames_emails_keywords():
    p = Pseudonymizer(usernames=["alice", "root", "Administrator"], keywords=["Initech"])
    out = pseudo_scrub(p, b"/home/alice/.ssh root Administrator alice.smith@initech.com INITECH-prod alicea\n")
    user = p.username("alice")
    assert out.startswith(f"/home/{user}/.ssh root Administrator user-".encode())
    assert b"initech" not in out.lower() and out.endswith(b" alicea\n")
    assert p.email("alice.smith@initech.com").encode() in out


def test_map_file_mode_0600_and_consistency_across_runs(tmp_path):
    path = tmp_path / "maps" / "jcdiag-map.json"
    first = Pseudonymizer(map_path=path, usernames=["alice"])
    redactor = Redactor(pseudonymizer=first)
    out1 = scrub_text(b"alice 10.9.8.7 host.acme.com\n", 2, redactor)[0]
    redactor.report()                                          # saves the map
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["entries"]["ipv4"]["10.9.8.7"] == first.ipv4("10.9.8.7")
    second = Pseudonymizer(map_path=path, usernames=["alice"])
    out2 = scrub_text(b"alice 10.9.8.7 host.acme.com\n", 7, Redactor(pseudonymizer=second))[0]
    assert out1 == out2
    assert second.ipv4("10.9.8.99").rsplit(".", 1)[0] == first.ipv4("10.9.8.7").rsplit(".", 1)[0]
    other = Pseudonymizer()                                    # no shared map: other pseudonyms
    assert other.ipv4("10.9.8.7") != first.ipv4("10.9.8.7") or other.username("alice") != first.username("alice")
    os.chmod(path, 0o644)
    Pseudonymizer(map_path=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_map_file_that_is_not_ours_is_refused(tmp_path):
    path = tmp_path / "map.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(PseudonymMapError):
        Pseudonymizer(map_path=path)


def test_pseudonyms_do_not_touch_redaction_markers_or_uuids():
    p = Pseudonymizer(hostnames=["redacted"], keywords=["policy"])
    out = pseudo_scrub(p, b"password=abc policy 9a46a632-471d-41b3-baf4-c0f1eb743c8f v1.2.3.4 2.14.0\n")
    assert out.startswith(b"password=[REDACTED:password] keyword-")
    assert out.endswith(b" 9a46a632-471d-41b3-baf4-c0f1eb743c8f v1.2.3.4 2.14.0\n")
