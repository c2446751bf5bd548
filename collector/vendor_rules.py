"""Vendor token rules (Slack, Stripe, GitLab ...): gitleaks' default rules, run safely.

The table ``collector/data/vendor_rules.json`` is built from gitleaks by
``scripts/build_secret_rules.py`` (Go regexes translated to Python, or skipped and
counted there).  This module compiles it and runs it the cheap way: every rule's
keywords join the one-pass Aho-Corasick prefilter of the redaction matcher
(``redact_rules.Matcher``), and a rule's regex runs only on a bounded window of the
line around a keyword hit (``WINDOW_BEFORE`` / ``WINDOW_AFTER`` bytes).  So the cost
does not grow with the number of rules, and a pattern that backtracks badly on
hostile text can only do so over a few kilobytes.

gitleaks' entropy thresholds and allowlists (per rule and global: regexes on the
secret, the match or the line; stopwords) are honoured so that the broad rule set
does not redact identifiers and hashes.  Every hit is reported as
``gitleaks:<upstream id>``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from .data import read_data

#: How far before / after a keyword hit a rule's regex may look (same line only).
WINDOW_BEFORE = 512
WINDOW_AFTER = 8192
HIT_PREFIX = "gitleaks:"


class VendorRuleError(ValueError):
    """The vendor rule table is malformed."""


@dataclass(frozen=True)
class _Allow:
    target: str                              # secret | match | line
    regexes: tuple[re.Pattern[bytes], ...]
    stopwords: tuple[bytes, ...]
    both: bool                               # condition AND (regex and stopword)

    def allows(self, secret: bytes, match: bytes, line: bytes) -> bool:
        subject = secret if self.target == "secret" else match if self.target == "match" else line
        by_rx = any(rx.search(subject) for rx in self.regexes)
        low = secret.lower()
        by_word = any(w in low for w in self.stopwords)
        if self.both:
            return by_rx and by_word
        return by_rx or by_word


@dataclass(frozen=True)
class VendorRule:
    upstream_id: str
    hit_id: str
    description: str
    keywords: tuple[bytes, ...]
    pattern: bytes
    group: int                               # 0: the first non-empty group, else the match
    entropy: float
    allowlists: tuple[_Allow, ...]

    @cached_property
    def rx(self) -> re.Pattern[bytes]:
        """The compiled regex (raises ``re.error``), compiled on first use."""
        return re.compile(self.pattern, re.M)


def shannon(data: bytes) -> float:
    """Shannon entropy in bits per byte, as gitleaks computes it."""
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in (data.count(b) for b in set(data)))


def _allow(raw: Mapping[str, Any], where: str) -> _Allow:
    try:
        regexes = tuple(re.compile(p.encode()) for p in raw.get("regexes", ()))
    except (re.error, AttributeError) as exc:
        raise VendorRuleError(f"{where}: allowlist regex does not compile: {exc}") from None
    target = raw.get("target", "secret")
    if target not in ("secret", "match", "line"):
        raise VendorRuleError(f"{where}: allowlist target {target!r}")
    return _Allow(target, regexes, tuple(str(w).encode() for w in raw.get("stopwords", ())),
                  raw.get("condition") == "and")


class VendorRules:
    """The compiled table.  ``keywords`` maps each lower-case keyword to the indexes of
    the rules it triggers; :meth:`scan` runs the triggered rules around the hits."""

    def __init__(self, doc: Mapping[str, Any], where: str = "vendor rules", lazy: bool = False):
        """``lazy``: compile each rule's regex when a keyword first triggers it, not now.
        For the shipped table, whose every regex the build script compiled: compiling
        all 212 took about 0.12 s of every start, more than a tenth of the whole
        collection of a small host, and most rules never meet their keyword.  A regex
        that still fails to compile then is skipped from that moment on, and counted."""
        if not isinstance(doc, Mapping) or doc.get("format") != "jcdiag-vendor-rules":
            raise VendorRuleError(f"{where}: not a jcdiag-vendor-rules document")
        self.source = str(doc.get("source", ""))
        self.commit = str(doc.get("commit", ""))
        self.upstream_rules = int(doc.get("upstream_rules", 0))
        self.skipped: dict[str, str] = {s["id"]: s["reason"] for s in doc.get("skipped", ())}
        self._global = _allow(doc.get("allowlist") or {}, f"{where}: global allowlist")
        self._dead: set[str] = set()           # rules whose regex turned out not to compile
        rules: list[VendorRule] = []
        for raw in doc.get("rules", ()):
            rid = raw.get("id")
            try:
                pattern = raw["regex"].encode()
            except (KeyError, AttributeError) as exc:
                self.skipped[str(rid)] = f"regex does not compile here: {exc!r}"    # counted, never run
                continue
            kws = tuple(k.encode() for k in raw.get("keywords", ()) if k and k == k.lower())
            if not kws:
                self.skipped[str(rid)] = "no keyword for the prefilter"
                continue
            rule = VendorRule(
                rid, HIT_PREFIX + rid, str(raw.get("description", rid)), kws, pattern,
                int(raw.get("secret_group", 0)), float(raw.get("entropy", 0) or 0),
                tuple(_allow(a, f"{where}: {rid}") for a in raw.get("allowlists", ())))
            if lazy or self._compiles(rule):
                rules.append(rule)
        self.rules = tuple(rules)
        keywords: dict[bytes, list[int]] = {}
        for index, rule in enumerate(self.rules):
            for kw in rule.keywords:
                keywords.setdefault(kw, []).append(index)
        self.keywords = {k: tuple(v) for k, v in keywords.items()}
        self._by_hit = {r.hit_id: r for r in self.rules}

    def _compiles(self, rule: VendorRule) -> bool:
        """Compiles ``rule``'s regex; one that does not compile here is skipped and counted."""
        if rule.upstream_id in self._dead:
            return False
        try:
            rule.rx
        except re.error as exc:
            self.skipped[str(rule.upstream_id)] = f"regex does not compile here: {exc}"
            self._dead.add(rule.upstream_id)
            return False
        return True

    @classmethod
    def load(cls, path: Path | str | None = None) -> "VendorRules":
        """The table at ``path``, compiled now; the shipped one (no ``path``) compiles lazily."""
        text, where = read_data("vendor_rules.json", path)
        try:
            return cls(json.loads(text), where, lazy=path is None)
        except ValueError as exc:
            raise VendorRuleError(f"{where}: {exc}") from None

    def describe(self, hit_id: str) -> Optional[dict[str, Any]]:
        """The report entry for a hit id (None when it is not a vendor rule)."""
        rule = self._by_hit.get(hit_id)
        if rule is None:
            return None
        return {"id": hit_id, "description": rule.description, "version": self.commit[:12],
                "upstream": "gitleaks", "upstream_id": rule.upstream_id}

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "commit": self.commit, "upstream_rules": self.upstream_rules,
                "active": len(self.rules) - len(self._dead), "skipped": dict(sorted(self.skipped.items()))}

    def scan(self, orig: bytes, hits: Iterable[tuple[int, tuple[int, ...]]],
             add: Callable[[int, int, bytes, int, int], None]) -> None:
        """Run the rules triggered by ``hits`` ((position, rule indexes), sorted) on
        windows of ``orig`` around them; ``add(s, e, hit_id, match_start, match_end)``
        receives each secret found."""
        searched: dict[int, tuple[int, bool]] = {}       # rule -> (window end, at line end)
        n = len(orig)
        for p, indexes in hits:
            for ri in indexes:
                done = searched.get(ri)
                if done is not None and p < done[0] and (done[1] or p + WINDOW_AFTER // 2 <= done[0]):
                    continue                              # this stretch was searched already
                lo = max(0, p - WINDOW_BEFORE)
                ws = orig.rfind(b"\n", lo, p) + 1 or lo
                le = orig.find(b"\n", p, p + WINDOW_AFTER)
                we = le if le >= 0 else min(n, p + WINDOW_AFTER)
                searched[ri] = (we, le >= 0 or we == n)
                self._run(self.rules[ri], orig, ws, we, add)

    def _run(self, rule: VendorRule, orig: bytes, ws: int, we: int,
             add: Callable[[int, int, bytes, int, int], None]) -> None:
        if not self._compiles(rule):
            return
        for m in rule.rx.finditer(orig, ws, we):
            if m.end() == m.start():
                continue
            if rule.group and rule.group <= (m.re.groups or 0):
                s, e = m.span(rule.group)
            else:
                s, e = next(((a, b) for a, b in (m.span(g) for g in range(1, (m.re.groups or 0) + 1))
                             if a >= 0 and b > a), m.span())
            if s < 0 or e <= s:
                continue
            secret = orig[s:e]
            if rule.entropy and shannon(secret) < rule.entropy:
                continue
            line = b""
            if any(a.target == "line" for a in rule.allowlists):
                ls = orig.rfind(b"\n", 0, m.start()) + 1
                le = orig.find(b"\n", m.end())
                line = orig[ls:le if le >= 0 else len(orig)]
            match = m.group()
            if self._global.allows(secret, match, line) or any(
                    a.allows(secret, match, line) for a in rule.allowlists):
                continue
            add(s, e, rule.hit_id, m.start(), m.end())


@lru_cache(maxsize=1)
def default_vendor_rules() -> VendorRules:
    """The shipped table (read and compiled once)."""
    return VendorRules.load()
