"""The early reject of harmless key candidates changes nothing but speed.

``Matcher.scan`` drops trigger positions where ``Matcher._harmless`` matches before
the per-hit loop (``HARMLESS_WORDS`` standing alone, a key name ending its line).  The
property compares it with the same matcher without the filter, on lines built around
those very candidates and the neighbours that decide them: two-word key prefixes,
separators, quotes, paths, placeholders, other triggers, keywords, line ends.
"""
from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.data import read_data
from collector.redact_rules import HARMLESS_WORDS, Matcher, RuleSet, ScanState, assemble, compile_rules
from collector.vendor_rules import default_vendor_rules


def _slow(fast: Matcher) -> Matcher:
    """The same matcher with the early reject off: the reference."""
    slow = copy.copy(fast)
    slow._harmless = None
    return slow


_FAST = compile_rules()
_WITH_KEYWORDS = compile_rules(keywords=("pwm", "ority s3"))
_PAIRS = [(m, _slow(m)) for m in (_FAST, _WITH_KEYWORDS)]


def _cased(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda up: "".join(c.upper() if u else c for c, u in zip(word, up)))


# Near misses beside the harmless words: names the rules classify, other triggers.
_OTHER_WORDS = ["credentials", "password", "passwd", "bindpw", "rootpw", "key", "apikey", "token",
                "secret", "auth", "authorization", "psk", "pwdx", "xpwd", "machine", "bearer"]
_PREFIXES = sorted(_FAST.rules.two_word_key_prefixes)
_LEAD = st.one_of(
    st.sampled_from(["", " ", "x", "[info] ", "; ", ": ", "\"", "'", "/", "\\", "<", "-", "--", "?",
                     "&", "name=\"", "<add key=\"", "<key>", "  ", "\t", "x.", "a_"]),
    st.sampled_from(_PREFIXES).flatmap(_cased).map(lambda w: w + " "),
    st.sampled_from(_PREFIXES).map(lambda w: "/" + w + " "),
)
_WORD = st.one_of(st.sampled_from(HARMLESS_WORDS).flatmap(_cased), st.sampled_from(HARMLESS_WORDS),
                  st.sampled_from(_OTHER_WORDS).flatmap(_cased))
_TAIL = st.sampled_from(["", "", "", "d", "s", "_x", ".conf", "-", "\"", "'", "</key>"])
_SEP = st.sampled_from(["", "=", ": ", ":", " ", "  ", "\t", "=>", " = ", "\": \"", "=\"", "='", ">", "\"/>",
                        "\" value=\"", ": |", ":"])
_VALUE = st.sampled_from(["", "/home/user015", "/etc/x.conf", "hunter2", "s3cr3tV4lue", "$HOME", "${PW}",
                          "redacted:x", "[REDACTED:password]", "true", "null", "****", "for user003",
                          "uid=user015,ou=Users,dc=example,dc=com", "AKIAABCDEFGHIJKLMNOP",
                          "Bearer abcdefghijklmnopqrstuvwxyz0123", "(possibly because", "A" * 24,
                          "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx.c2ln", "pwm", "ority s3cret"])
_END = st.sampled_from(["\n", "\r\n", "", " more\n", "\"\n", "'/>\n", "</value>\n", "\n  s3cret\n",
                        "\n<string>s3cret</string>\n", " from 10.0.0.1 port 22\n"])
_LINE = st.tuples(_LEAD, _WORD, _TAIL, _SEP, _VALUE, _END).map("".join)
_NOISE = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789_.- =:;\"'/\n", max_size=12)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.tuples(_NOISE, _LINE), min_size=1, max_size=4),
       which=st.integers(0, len(_PAIRS) - 1))
def test_early_reject_scans_exactly_as_the_handlers(lines, which):
    fast, slow = _PAIRS[which]
    block = "".join(noise + line for noise, line in lines).encode()
    fast_state, slow_state = ScanState(), ScanState()
    fast_extents: list[tuple[int, int]] = []
    slow_extents: list[tuple[int, int]] = []
    assert fast.scan(block, fast_state, fast_extents) == slow.scan(block, slow_state, slow_extents)
    assert fast_state == slow_state
    assert fast_extents == slow_extents


def test_common_log_candidates_are_rejected_early():
    """The candidates that dominate ordinary logs never reach the per-hit loop."""
    low = (b"nov  2 12:56:18 ws sshd[1]: accepted publickey for user003 from 10.0.0.1\n"
           b"nov  4 03:12:19 ws sudo:  user024 : tty=pts/8 ; pwd=/home/user024 ; user=root\n"
           b"2026-11-10 08:27:08.864 [info] pwm: polling for commands\n"
           b"x509: certificate signed by unknown authority (possibly because\n"
           b"ldap bind failed: invalid credentials\n")
    harmless = _FAST._harmless
    assert harmless is not None
    kept = [(p, _FAST._literals[i]) for i, p, _ in _FAST._finder.matches(low) if not harmless.match(low, p)]
    assert kept == []


def test_words_that_can_name_a_secret_are_never_rejected_early():
    """A word the rules classify (in some letter case) or that another rule begins with is
    left to the handlers, whatever the word list says."""
    for line in (b"connect pwd=s3cret\n", b"secret pwd: hunter22\n", b"passwd=hunter2\n",
                 b"authorization: bearer abcdefghijklmnop0123\n"):
        p = line.find(b"pw") if b"pw" in line else line.find(b"auth")
        assert not _FAST._harmless.match(line, p), line
    assert _WITH_KEYWORDS._harmless.match(b"[info] pwm: x\n", 7) is None   # a keyword begins there


def test_a_word_the_rules_make_a_key_is_left_to_the_handlers():
    """The word list is checked against the rules in use: with a rule set that makes
    ``pwd`` a password key, ``PWD=`` is no longer rejected early, and it is redacted."""
    doc = json.loads(read_data("redaction_rules.json")[0])
    password = next(r for r in doc["rules"] if r["id"] == "password")
    password["match"][0]["keys"].append("^pwd$")
    matcher = Matcher(RuleSet.from_dict(doc), (), default_vendor_rules())
    line = b"sudo: u : PWD=s3cretvalue ; USER=root\n"
    assert matcher._harmless is not None and not matcher._harmless.match(line.lower(), line.find(b"PWD"))
    assert b"s3cretvalue" not in assemble(line, matcher.scan(line, ScanState()))
    assert _FAST.scan(line, ScanState()) == []
