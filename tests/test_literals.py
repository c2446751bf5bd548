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


@pytest.mark.parametrize("native", [True, False])
def test_overlapping_and_nested_literals_are_all_reported(native):
    finder = LiteralFinder([b"aa", b"a", b"-----begin", b"begin"], native=native)
    found = sorted(finder.positions(b"aaa -----begin"))
    assert found == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (4, 2), (9, 3)]


def test_empty_literal_is_refused():
    with pytest.raises(ValueError):
        LiteralFinder([b"key", b""])
