"""Every place where any of a fixed set of byte strings occurs in a block: one pass.

Redaction and the log statistics both start by finding trigger words (``token``,
``bearer``, ``-----begin``...; ``err``, ``fatal``...) in lower-cased blocks, and only
then run regular expressions where a word was found.  With ``bytes.find`` that is
one pass over the block per word (about 1.5 GB/s each, so 16 words run at under
100 MB/s) and was the largest share of a collection's own CPU time.
``ahocorasick_rs`` (Rust's ``aho-corasick`` crate) finds all the words in one pass
at about 500 MB/s, and whether a line holds one of them at several GB/s.
``collector._literals`` (C, built with the package) finds every occurrence at 1.2 to
1.5 GB/s on agent logs, by anchoring each word at its least frequent byte pair: where
it is not built the automaton does, and where neither is, the ``bytes.find`` loop gives
the same answer, slower.
"""
from __future__ import annotations

from operator import itemgetter
from typing import Sequence

try:
    import ahocorasick_rs as _ac
except ImportError:           # no wheel for this platform: the pure-Python scan below
    _ac = None
try:                          # every occurrence in C (collector/_literals.c), built with the package
    from collector import _literals as _c
except ImportError:
    _c = None

#: Bytes of text the C table chooses its anchor pairs from (see :meth:`LiteralFinder._c_table`).
SAMPLE = 256 << 10


class LiteralFinder:
    """Where ``literals`` occur in a block, in one pass.

    ``positions(block)`` is a list of ``(start, index into literals)`` in no
    particular order.  Case-sensitive: callers pass lower-cased bytes.

    ``every=True`` reports every occurrence, overlaps included (redaction tries its
    rules at each).  ``every=False`` promises less and runs far faster (SIMD, about
    9 GB/s against 0.4 on agent logs): every occurrence is reported or overlaps one
    that is, so each line holding one of the words (words without a newline) has a
    reported position on it, which is all a line filter needs.
    """

    def __init__(self, literals: Sequence[bytes], every: bool = True, native: bool = True,
                 automaton: bool = False):
        self.literals = tuple(bytes(lit) for lit in literals)
        self.every = every
        if not all(self.literals):
            raise ValueError("an empty literal matches everywhere")
        self._automaton = None
        self._table = None               # collector._literals' table, made from the first blocks
        self._sampled = 0                # bytes of text it was made from
        self._use_c = native and every and not automaton and _c is not None and bool(self.literals)
        if native and not self._use_c and _ac is not None and self.literals:
            self._automaton = (_ac.BytesAhoCorasick(self.literals, implementation=_ac.Implementation.DFA)
                               if every else
                               _ac.BytesAhoCorasick(self.literals, matchkind=_ac.MATCHKIND_LEFTMOST_FIRST))

    @property
    def engine(self) -> str:
        """``"c"`` (collector._literals), ``"automaton"`` (ahocorasick_rs) or ``"python"``."""
        return "c" if self._use_c else "automaton" if self._automaton is not None else "python"

    @property
    def native(self) -> bool:
        return self.engine != "python"

    def _c_table(self, block: bytes, lower: bool = False):
        """The C search table, its anchors chosen from the text itself (``lower``: from the
        block lower-cased): made from the first block, made again (once or twice) while
        later blocks offer a much larger sample, e.g. an agent log after a small config
        file.  Only the speed depends on it."""
        if self._table is None or (self._sampled < SAMPLE and len(block) > 2 * self._sampled):
            sample = block[:SAMPLE].lower() if lower else block[:SAMPLE]
            self._table, self._sampled = _c.table(self.literals, sample), max(len(sample), 1)
        return self._table

    def starts(self, block: bytes) -> list[int]:
        """Where matches start, in increasing order (``positions`` without the word index;
        the log statistics only need the lines)."""
        if self._automaton is not None and not self.every:
            return list(map(itemgetter(1), self._automaton.find_matches_as_indexes(block)))
        return sorted(map(itemgetter(0), self.positions(block)))

    def positions(self, block: bytes) -> list[tuple[int, int]]:
        return [(start, index) for index, start, _ in self.matches(block)]

    def lower_matches(self, block: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
        """``block.lower()`` and :meth:`matches` of it: in C one call, the lowering eight
        bytes at a time (``bytes.lower`` alone cost a third of the search)."""
        if self._use_c:
            return _c.find_lower(self._c_table(block, lower=True), block)
        low = block.lower()
        return low, self.matches(low)

    def matches(self, block: bytes) -> list[tuple[int, int, int]]:
        """``(index into literals, start, end)`` of each occurrence, in no particular order:
        the automaton's own answer, with no tuple rebuilt per hit (redaction filters it
        at C speed first)."""
        if self._use_c:
            return _c.find(self._c_table(block), block)
        if self._automaton is not None:
            return self._automaton.find_matches_as_indexes(block, overlapping=self.every)
        found = []                  # every occurrence: also keeps the every=False promise
        find = block.find
        for index, literal in enumerate(self.literals):
            at = find(literal)
            while at >= 0:
                found.append((index, at, at + len(literal)))
                at = find(literal, at + 1)
        return found
