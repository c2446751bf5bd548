"""collector.literals: the one-pass finders (C, the automaton) and the pure-Python
fallback agree exactly."""
import pytest
from hypothesis import given, settings, strategies as st

from collector import literals
from collector.literals import LiteralFinder

ALPHABET = b"ab-@\n"
words = st.binary(min_size=1, max_size=4).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b))


ENGINES = [pytest.param(False, marks=pytest.mark.skipif(literals._c is None, reason="collector._literals not built"),
                        id="c"),
           pytest.param(True, marks=pytest.mark.skipif(literals._ac is None, reason="ahocorasick_rs has no wheel"),
                        id="automaton")]


@pytest.mark.parametrize("automaton", ENGINES)
@settings(max_examples=300, deadline=None)
@given(st.lists(words, min_size=1, max_size=8, unique=True),
       st.binary(max_size=400).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)))
def test_native_and_fallback_find_the_same_places(automaton, lits, block):
    native, fallback = LiteralFinder(lits, automaton=automaton), LiteralFinder(lits, native=False)
    assert native.engine == ("automaton" if automaton else "c") and fallback.engine == "python"
    assert sorted(native.matches(block)) == sorted(fallback.matches(block))


@pytest.mark.skipif(literals._c is None, reason="collector._literals not built")
@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=12),
       st.lists(st.binary(max_size=300), min_size=1, max_size=4), st.data())
def test_the_c_finder_is_exact_on_any_bytes_words_and_sample(lits, blocks, data):
    """Any bytes, repeated words, words longer than the 8 bytes compared at once, blocks
    shorter than a word, planted occurrences at both ends: every (word, start, end), and
    the answer does not depend on the text the anchors were chosen from."""
    planted = []
    for block in blocks:
        word = data.draw(st.sampled_from(lits))
        planted.append(word + block + word if data.draw(st.booleans()) else block)
    finder, fallback = LiteralFinder(lits), LiteralFinder(lits, native=False)
    for block in planted:
        assert sorted(finder.matches(block)) == sorted(fallback.matches(block))
    fresh = LiteralFinder(lits)
    for block in reversed(planted):              # other first blocks: other anchors
        assert sorted(fresh.matches(block)) == sorted(fallback.matches(block))


@pytest.mark.parametrize("native, automaton", [(True, False), (True, True), (False, False)],
                         ids=["native", "automaton", "python"])
@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=8), st.binary(max_size=600),
       st.integers(0, 16))
def test_lower_matches_is_lower_then_matches(native, automaton, lits, block, shift):
    """lower_matches(block) is (block.lower(), matches(block.lower())) on any bytes (the C
    lowering takes eight bytes at a time: ``shift`` moves the block across word edges)."""
    lits = [lit.lower() for lit in lits]
    finder = LiteralFinder(lits, native=native, automaton=automaton)
    block = bytes(shift) + block.upper() + block
    low, found = finder.lower_matches(block)
    assert low == block.lower()
    assert sorted(found) == sorted(LiteralFinder(lits, native=False).matches(block.lower()))


@pytest.mark.skipif(literals._c is None, reason="collector._literals not built")
def test_the_c_table_is_remade_from_a_larger_sample_with_the_same_answer():
    lits = [b"password", b"pw", b"@", b"token=", b"key", b"bearer ", b"-----begin"]
    text = b"".join(b"%d user@host password=x pw token=%d key bearer abc -----BEGIN\n".lower() % (i, i)
                    for i in range(20000))
    finder, fallback = LiteralFinder(lits), LiteralFinder(lits, native=False)
    small = text[:300]
    assert sorted(finder.matches(small)) == sorted(fallback.matches(small))
    first = finder._table
    assert sorted(finder.matches(text)) == sorted(fallback.matches(text))
    assert finder._table is not first and finder._sampled == literals.SAMPLE
    again = finder._table
    finder.matches(text)
    assert finder._table is again                # made once more, not at every block


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


@pytest.mark.parametrize("native, automaton", [(True, False), (True, True), (False, False)],
                         ids=["native", "automaton", "python"])
def test_overlapping_and_nested_literals_are_all_reported(native, automaton):
    finder = LiteralFinder([b"aa", b"a", b"-----begin", b"begin"], native=native, automaton=automaton)
    found = sorted(finder.positions(b"aaa -----begin"))
    assert found == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (4, 2), (9, 3)]


def test_empty_literal_is_refused():
    with pytest.raises(ValueError):
        LiteralFinder([b"key", b""])
