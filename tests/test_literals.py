"""collector.literals: the one-pass finder and its pure-Python fallback agree exactly."""
import pytest
from hypothesis import given, settings, strategies as st

from collector import literals
from collector.literals import LiteralFinder

ALPHABET = b"ab-@\n"
words = st.binary(min_size=1, max_size=4).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b))


@pytest.mark.skipif(literals._ac is None, reason="ahocorasick_rs has no wheel here")
@settings(max_examples=300, deadline=None)
@given(st.lists(words, min_size=1, max_size=8, unique=True),
       st.binary(max_size=400).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)))
def test_native_and_fallback_find_the_same_places(lits, block):
    native, fallback = LiteralFinder(lits), LiteralFinder(lits, native=False)
    assert native.native and not fallback.native
    assert sorted(native.positions(block)) == sorted(fallback.positions(block))


@pytest.mark.skipif(literals._ac is None, reason="ahocorasick_rs has no wheel here")
@settings(max_examples=300, deadline=None)
@given(st.lists(words, min_size=1, max_size=8, unique=True),
       st.binary(max_size=400).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)))
def test_the_fast_mode_reports_one_of_every_overlapping_group(lits, block):
    """every=False: each occurrence is reported or overlaps a reported one."""
    reported = [(at, at + len(lits[i])) for at, i in LiteralFinder(lits, every=False).positions(block)]
    for at, i in LiteralFinder(lits, native=False).positions(block):
        end = at + len(lits[i])
        assert any(s < end and at < e for s, e in reported), (at, lits[i])


def test_the_fast_mode_marks_every_line_holding_a_word():
    block = b"ok\n[ERROR] x\nfatal: y\nnothing\nerr err crit\n"
    finder = LiteralFinder([b"err", b"error", b"fatal", b"crit"], every=False)
    lines = {block.rfind(b"\n", 0, at) + 1 for at, _ in finder.positions(block.lower())}
    assert lines == {3, 13, 30}


@pytest.mark.parametrize("native", [True, False])
def test_overlapping_and_nested_literals_are_all_reported(native):
    finder = LiteralFinder([b"aa", b"a", b"-----begin", b"begin"], native=native)
    found = sorted(finder.positions(b"aaa -----begin"))
    assert found == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (4, 2), (9, 3)]


def test_empty_literal_is_refused():
    with pytest.raises(ValueError):
        LiteralFinder([b"key", b""])
