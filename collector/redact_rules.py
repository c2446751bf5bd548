"""Secret scrubbing rules: loaded from data, compiled into one fast matcher.

The rules live in one place, ``collector/data/redaction_rules.json``: each has an
``id``, a ``description``, the ``version`` that last changed it and one or more
*matchers*.  The matcher types are few and generic, so new secrets are new data,
not new code:

``regex``
    A pattern run on the **lower-cased** bytes (so ``Password`` and ``PASSWORD``
    are one case), beginning with one of its ``triggers`` (lower-case literals).
    The ``secret`` group (default: the whole match) is replaced.  ``verify`` is a
    case-sensitive pattern the original secret must match (``AKIA...``);
    ``not_after`` / ``not_before`` are character classes that must not touch the
    match; ``then`` names a ``context`` rule to run on the same line.
``key``
    Key/value structure in free text (``key=value``, ``key: value``,
    ``"key": "value"``, ``--key value``, ``<key>value</key>``): a key name that
    contains a ``key_triggers`` word is normalised (lower case, no ``-_.``) and
    classified by ``keys`` / ``keys_raw`` / ``exclude`` regexes.  The same
    classification drives the structured JSON / INI redactor in ``redact.py``.
``pem``
    PEM private key blocks, one line or many (the scanner keeps state across
    lines and chunks).
``url-userinfo``
    ``scheme://user:password@host``.
``context``
    A case-sensitive pattern redacted only on a line where rule ``when`` hit
    (40-character AWS secret next to an access key id).
``argv``
    Command lines (``collector/argv.py``): ``tools`` maps a tool name to the flags
    that take a secret (glued ``-pX``, separate ``-p X``, ``user:X``, ``pass:X``, the
    n-th bare argument).  Applied to every line of a process or service listing, and
    in other text from a tool's name to the end of its line.

Beside these rules, the vendor token rules of ``vendor_rules.py`` (gitleaks) share the
one-pass prefilter: their keywords are literals of the same automaton.  Values may also
sit below their key: YAML ``key:`` / ``key: |`` and plist ``<key>..</key>`` set a state
carried from line to line and chunk to chunk, as PEM blocks do.

Speed comes from never running the full pattern over every byte: one
Aho-Corasick pass (``literals.py``) finds the few places worth a look, and the
combined pattern is only *matched* there.  Ordinary logs still offer thousands of
key candidates per megabyte that no rule wants (sshd's "publickey", sudo's
``PWD=``); an exact early reject (``Matcher._harmless_filter``) drops them at C
speed before any per-hit Python runs.  See ``scripts/bench_redact.py`` and
``scripts/bench_scrub.py``.

Two rules keep matches from hiding secrets from each other: after a match,
scanning resumes at the start of what it replaced (a token-shaped rule may have
swallowed the *name* of the next key), and overlapping replacements merge into
their union (a longer secret found second is never cut short by a shorter match
found first).  Replacing more is always allowed; replacing less never is.
"""
from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, product, repeat
from operator import itemgetter, not_
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .argv import ArgvScanner, ToolSpec
from .data import read_data
from .literals import LiteralFinder
from .vendor_rules import VendorRules, default_vendor_rules

#: A replacement: bytes ``[start, end)`` of the scanned block become ``replacement``;
#: ``rule_id`` is counted in the report (None for parts of a hit already counted).
Span = tuple[int, int, bytes, Optional[str]]

ELLIPSIS = "\u2026".encode()

# Upper bound on what one match may cover.  Every pattern is bounded by it, which
# is what lets a line longer than the scanner's window be cut safely.
MAX_MATCH = 24 * 1024

MATCHER_TYPES = ("regex", "key", "pem", "url-userinfo", "context", "argv")


class RuleError(ValueError):
    """The rule data is malformed; the message names the rule and the field."""


@dataclass(frozen=True, eq=False)
class Rule:
    """One redaction rule as the data describes it."""

    id: str
    description: str
    version: str
    match: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, eq=False)
class RuleSet:
    """A validated rule set; :meth:`load` reads the shipped one."""

    version: str
    rules: tuple[Rule, ...]
    marker: str = "[REDACTED:{id}]"
    keep_prefixes: tuple[str, ...] = ()
    keep_prefix_min_length: int = 16
    placeholder_values: frozenset[str] = frozenset()
    keep_keys: frozenset[str] = frozenset()
    file_extensions: frozenset[str] = frozenset()
    two_word_key_prefixes: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path | str | None = None) -> "RuleSet":
        """The rules in ``path``, or the shipped default rules."""
        text, where = read_data("redaction_rules.json", path)
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise RuleError(f"{where}: not valid JSON: {exc}") from None
        return cls.from_dict(doc, where=where)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "rules") -> "RuleSet":
        """Validate ``doc`` (the JSON document) into a rule set; raise :class:`RuleError`."""
        if not isinstance(doc, Mapping):
            raise RuleError(f"{where}: the document must be a JSON object")
        version = doc.get("version")
        if not isinstance(version, str) or not version:
            raise RuleError(f"{where}: 'version' must be a non-empty string")
        raw_rules = doc.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            raise RuleError(f"{where}: 'rules' must be a non-empty list")
        rules: list[Rule] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_rules):
            rule = _validate_rule(raw, f"{where}: rule #{index + 1}")
            if rule.id in seen:
                raise RuleError(f"{where}: rule id {rule.id!r} is used twice")
            seen.add(rule.id)
            rules.append(rule)
        for rule in rules:
            for m in rule.match:
                ref = m.get("then") or m.get("when")
                if ref and ref not in seen:
                    raise RuleError(f"{where}: rule {rule.id!r} refers to unknown rule {ref!r}")
        marker = doc.get("marker", "[REDACTED:{id}]")
        if "{id}" not in marker:
            raise RuleError(f"{where}: 'marker' must contain {{id}}")
        prefixes = tuple(doc.get("keep_prefixes", ()))
        if any(len(p) > 4 for p in prefixes):
            raise RuleError(f"{where}: keep_prefixes may keep at most 4 characters of a secret")
        return cls(
            version=version,
            rules=tuple(rules),
            marker=marker,
            keep_prefixes=prefixes,
            keep_prefix_min_length=int(doc.get("keep_prefix_min_length", 16)),
            placeholder_values=frozenset(v.lower() for v in doc.get("placeholder_values", ())),
            keep_keys=frozenset(_normalise_key(k) for k in doc.get("keep_keys", ())),
            file_extensions=frozenset(e.lower() for e in doc.get("file_extensions", ())),
            two_word_key_prefixes=frozenset(w.lower() for w in doc.get("two_word_key_prefixes", ())),
        )

    def describe(self) -> list[dict[str, str]]:
        """id, description and version of every rule, for the redaction report."""
        return [{"id": r.id, "description": r.description, "version": r.version} for r in self.rules]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)


@lru_cache(maxsize=1)
def default_rules() -> RuleSet:
    """The shipped rule set (read once)."""
    return RuleSet.load()


def _validate_rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise RuleError(f"{where}: must be an object")
    rid = raw.get("id")
    if not isinstance(rid, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", rid):
        raise RuleError(f"{where}: 'id' must be lower-case kebab-case, got {rid!r}")
    where = f"{where} ({rid})"
    for name in ("description", "version"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise RuleError(f"{where}: {name!r} must be a non-empty string")
    matchers = raw.get("match")
    if not isinstance(matchers, list) or not matchers:
        raise RuleError(f"{where}: 'match' must be a non-empty list")
    for m in matchers:
        _validate_matcher(m, where)
    return Rule(rid, raw["description"], raw["version"], tuple(dict(m) for m in matchers))


def _compile(pattern: str, where: str, what: str) -> re.Pattern[bytes]:
    try:
        return re.compile(pattern.encode())
    except (re.error, UnicodeEncodeError) as exc:
        raise RuleError(f"{where}: {what} does not compile: {exc}") from None


def _validate_matcher(m: Any, where: str) -> None:
    if not isinstance(m, Mapping) or m.get("type") not in MATCHER_TYPES:
        raise RuleError(f"{where}: each matcher needs a 'type' among {', '.join(MATCHER_TYPES)}")
    kind = m["type"]
    triggers = m.get("key_triggers" if kind == "key" else "triggers", [])
    if kind not in ("context", "argv"):
        if not triggers or any(not isinstance(t, str) or not t or t != t.lower() for t in triggers):
            raise RuleError(f"{where}: a {kind} matcher needs non-empty lower-case triggers")
    if kind == "regex":
        pattern = m.get("pattern")
        if not isinstance(pattern, str):
            raise RuleError(f"{where}: regex matcher needs a 'pattern'")
        rx = _compile(pattern, where, "pattern")
        extra = set(rx.groupindex) - {"secret"}
        if extra:
            raise RuleError(f"{where}: only the group name 'secret' is allowed, found {sorted(extra)}")
        if not _starts_with_trigger(pattern, triggers):
            raise RuleError(f"{where}: pattern must begin with one of its triggers {triggers}")
        for name in ("verify",):
            if m.get(name) is not None:
                _compile(m[name], where, name)
        for name in ("not_after", "not_before"):
            if m.get(name) is not None:
                _compile(f"[{m[name]}]", where, name)
    elif kind == "key":
        for name in ("keys", "keys_raw", "exclude"):
            for p in m.get(name, []):
                try:
                    re.compile(p)
                except re.error as exc:
                    raise RuleError(f"{where}: {name} entry {p!r} does not compile: {exc}") from None
        if not m.get("keys") and not m.get("keys_raw"):
            raise RuleError(f"{where}: key matcher needs 'keys' or 'keys_raw'")
    elif kind == "pem":
        for name in ("begin", "end"):
            if not isinstance(m.get(name), str):
                raise RuleError(f"{where}: pem matcher needs {name!r}")
            _compile(m[name], where, name)
        if not _starts_with_trigger(m["begin"], triggers):
            raise RuleError(f"{where}: pem 'begin' must begin with one of its triggers")
    elif kind == "argv":
        tools = m.get("tools")
        if not isinstance(tools, Mapping) or not tools:
            raise RuleError(f"{where}: argv matcher needs a non-empty 'tools' object")
        for name, spec in tools.items():
            if not isinstance(spec, Mapping) or name != name.lower():
                raise RuleError(f"{where}: tool {name!r} needs a lower-case name and an object")
            try:
                ToolSpec.from_dict(spec)
            except (re.error, TypeError, ValueError, AttributeError) as exc:
                raise RuleError(f"{where}: tool {name!r}: {exc}") from None
    elif kind == "context":
        if not isinstance(m.get("pattern"), str) or not isinstance(m.get("when"), str):
            raise RuleError(f"{where}: context matcher needs 'pattern' and 'when'")
        _compile(m["pattern"], where, "pattern")


def _starts_with_trigger(pattern: str, triggers: Sequence[str]) -> bool:
    """True when every match of ``pattern`` begins with a trigger: the pattern starts
    with a trigger literal, or with a group ``(?:t1|t2)`` of trigger literals."""
    if any(pattern.startswith(t) or pattern.startswith(re.escape(t)) for t in triggers):
        return True
    group = re.match(r"\(\?:([^()]*)\)", pattern)
    return bool(group) and all(alt in triggers or re.sub(r"\\(.)", r"\1", alt) in triggers
                               for alt in group.group(1).split("|"))


_KEY_NORMALISE = re.compile(r"[-_. '\"]")


def _normalise_key(name: str) -> str:
    return _KEY_NORMALISE.sub("", name.lower().lstrip("-"))


def _byte_table(char_class: Optional[str]) -> Optional[bytes]:
    """A 256-entry membership table for a regex character class (fast per-byte checks)."""
    if not char_class:
        return None
    rx = re.compile(f"[{char_class}]".encode())
    return bytes(1 if rx.match(bytes([b])) else 0 for b in range(256))


# ----------------------------------------------------------------------------- matcher

@dataclass
class ScanState:
    """What the scanner carries from one block of lines to the next."""

    pem: bool = False            # inside a multi-line PEM private key block
    aws_carry: bool = False      # the unfinished line (a long-line piece) held an AWS key id
    # A YAML secret key with its value on the lines below: (key line's indent, rule id,
    # already counted).  Every following line indented deeper (or blank) is value.
    yaml: Optional[tuple[int, str, bool]] = None
    # A plist <key> naming a secret: (rule id, closing tag while inside the value, or
    # None while the value element has not started yet).
    plist: Optional[tuple[str, Optional[bytes]]] = None

    def copy(self) -> "ScanState":
        return ScanState(self.pem, self.aws_carry, self.yaml, self.plist)


@dataclass(frozen=True)
class KeyClass:
    """What a key name classifies as: the rule and the options of its matcher."""

    rule_id: str
    space_separator_min_length: int = 0
    skip_path_values: bool = False


@dataclass(frozen=True)
class _KeyMatcher:
    rule_id: str
    keys: tuple[re.Pattern[str], ...]
    keys_raw: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]
    cls: KeyClass


# Values of a key/value pair, in the order tried: \"escaped\", "double", 'single',
# an unterminated quote (to end of line), or a bare word (trailing brackets left out).
# One group holds the value with its quotes (``_unquote`` takes them off): fewer
# groups make every match cheaper.
_KV_VALUE = (
    rb'(?:(?P<kvv>\\"(?:[^\\"\r\n]|\\[^"\r\n]){0,8192}\\"'
    rb'|"(?:[^"\\\r\n]|\\[^\r\n]){0,8192}"'
    rb"|'[^'\r\n]{0,8192}'"
    rb'|["\'][^\r\n]{1,8192}'
    rb'|[^\s"\'{\[][^\s"\']{0,8191})'
    rb'|(?P<kvnl>(?:[|>][-+0-9]{0,2}[ \t]{0,8})?(?=\r?\n|$)))'
)
_KV_TAIL = (
    rb"(?P<kvrest>[a-z0-9_.-]{0,64})(?P<kvq>\\?[\"'])?"
    rb"(?:(?P<kvsep>[ \t]{0,8}(?:=>|[:=])[ \t]{0,8}|[ \t]{1,8})\[?" + _KV_VALUE +
    rb"|>(?P<kvx>[^<\r\n]{1,8192})(?=</)"
    rb"|(?P<kvend>(?<=[\"'])[ \t]{0,8}/?>))"
)


# Words of everyday logs that hold a key trigger and never name a secret: sshd's
# "Accepted publickey for", sudo's "PWD=/home/user", TLS errors' "unknown authority",
# jcagent's "[INFO] pwm: ...", "systemKey=..." and "... and key /opt/jc/client.key".
# They are most of the key candidates of ordinary logs; ``Matcher._harmless_filter``
# turns them into an exact early reject (each is checked against the rules, in every
# letter case, when the matcher is built: keep them short).
HARMLESS_WORDS = ("pwd", "pwm", "publickey", "authority", "key", "systemkey")
_NAME_CHAR = rb"[a-z0-9_.-]"


def _unquote(value: bytes, start: int) -> tuple[int, int]:
    """The span of a matched value without its quotes."""
    end = start + len(value)
    if value[:2] == b'\\"':
        return start + 2, end - 2 if len(value) >= 4 and value.endswith(b'\\"') else end
    first = value[:1]
    if first == b'"' or first == b"'":
        return start + 1, end - 1 if len(value) >= 2 and value.endswith(first) else end
    return start, end


# Key-name characters as 'n', everything else as ' ': the start of the key name
# before a trigger is then one ``rfind`` in the masked window before it.
_NAME_MASK = bytes(110 if (48 <= b <= 57 or 97 <= b <= 122 or b in b"_.-") else 32 for b in range(256))


def _name_start(low: bytes, lo: int, p: int) -> int:
    """Just after the last non-name byte of ``low[lo:p]``, or 0 when there is none.

    Only the short window is masked, not the whole block: most blocks have a few key
    candidates left after the prefilter, and masking 1 MiB cost more than all of them.
    """
    at = low[lo:p].translate(_NAME_MASK).rfind(b" ")
    return lo + at + 1 if at >= 0 else 0


def _key_start(low: bytes, p: int) -> int:
    """Where the key name holding the trigger at ``p`` starts (it is at most 64 bytes
    before; 0 when the name runs further back)."""
    return _name_start(low, max(0, p - 64), p)


# A value that is plainly a file path, never a base64 secret: it starts with what
# base64 cannot produce (~ . \\ : %) or with a well-known root folder, or it ends in
# a file extension (base64 has no dot).
_PATHLIKE = re.compile(
    rb"(?:~/|\.{1,2}[/\\]|[a-z]:[\\/]|\\\\|%[a-z_]+%[\\/]"
    rb"|/(?:etc|opt|home|var|usr|root|tmp|users|library|private|srv|mnt|run|system|applications|dev|snap|media)/"
    rb"|/(?:[\w@-]+/)*[\w@-]*\.[a-z0-9]{1,8}\Z)", re.I)
_USERINFO_BAD = re.compile(rb"[\s/\"'<>\\]")
_AUTHORITY_END = re.compile(rb"[\s/?#\"'<>]")
_PEM_BODY = re.compile(
    rb"[ \t]*(?:[A-Za-z0-9+/=]{1,200}|(?i:proc-type|dek-info|comment|version|hash):[^\r\n]*)?[ \t]*\r?")
_B64_RUN = re.compile(rb"[A-Za-z0-9+/]{40,}={0,2}")
_ALL_STARS = re.compile(rb"\*+|x{3,}|#{3,}", re.I)
# A reference to a value kept elsewhere ($PASSWORD, $db_pass, ${DB_PASS}, $(cat f), %PASS%,
# {{ .token }}), never the secret itself.  A bare name must read like a variable: two letters
# first and one case throughout, so a password such as "$A000000" or "$Secret1" is still hidden.
_NAME = rb"(?:[A-Z_]{2,}[A-Z0-9_]*|[a-z_]{2,}[a-z0-9_]*)"
_VARIABLE = re.compile(rb"\$" + _NAME + rb"|\$\{[^{}\s]{1,64}\}|\$\([^()]{1,200}\)|%" + _NAME + rb"%"
                       rb"|\{\{[^{}]{1,100}\}\}")


def is_variable(value: bytes) -> bool:
    """A reference such as ``$DB_PASS`` or ``%PASS%`` (see :data:`_VARIABLE`); a bare name
    with more digits than letters (``$AA00000``) reads like a password and is not one."""
    if _VARIABLE.fullmatch(value) is None:
        return False
    if value[:2] in (b"${", b"$(", b"{{"):
        return True
    digits = sum(c in b"0123456789" for c in value)
    return digits <= len(value) - 2 - digits


class Matcher:
    """The compiled form of a :class:`RuleSet` (plus run-time keywords).

    :meth:`scan` looks at a block of complete lines (or a piece of a very long
    line) and returns what to replace; it never allocates per byte, only per hit.
    """

    def __init__(self, rules: RuleSet, keywords: Sequence[str] = (),
                 vendor: Optional[VendorRules] = None):
        self.rules = rules
        self.vendor = vendor
        self._argv: Optional[ArgvScanner] = None
        self._markers: dict[str, bytes] = {}
        self._keep_prefixes = tuple(p.encode() for p in rules.keep_prefixes)
        self._placeholders = frozenset(v.encode() for v in rules.placeholder_values)
        self._key_matchers: list[_KeyMatcher] = []
        self._key_cache: dict[str, Optional[KeyClass]] = {}
        self._contexts: dict[str, list[tuple[str, re.Pattern[bytes]]]] = {}
        literals: set[bytes] = set()
        alternatives: list[bytes] = []
        handlers: list[Callable[..., Optional[int]]] = []
        # The literals each alternative begins with (every match starts with one).
        starts: list[tuple[bytes, ...]] = []
        key_triggers: list[str] = []
        # Context rules run on every line where the pattern they hang on occurs,
        # whichever rule redacted it (an AWS key id may sit inside a bearer token).
        self._anchors: dict[bytes, re.Pattern[bytes]] = {}

        def add(pattern: bytes, handler: Callable[..., Optional[int]], begins: Iterable[bytes]) -> None:
            tag = f"h{len(handlers)}".encode()
            alternatives.append(b"(?:" + pattern + b")(?P<" + tag + b">)")
            handlers.append(handler)
            starts.append(tuple(begins))

        for rule in rules.rules:
            self._markers[rule.id] = rules.marker.format(id=rule.id).encode()
            for m in rule.match:
                kind = m["type"]
                if kind == "regex":
                    group = f"s{len(handlers)}"
                    pattern = m["pattern"].encode()
                    has_secret = b"(?P<secret>" in pattern
                    pattern = pattern.replace(b"(?P<secret>", f"(?P<{group}>".encode())
                    triggers = [t.encode() for t in m["triggers"]]
                    add(pattern, self._regex_handler(rule.id, m, group if has_secret else None), triggers)
                    literals.update(triggers)
                    if m.get("then"):
                        anchor = re.compile(m["verify"].encode()) if m.get("verify") else \
                            re.compile(m["pattern"].encode(), re.I)
                        self._anchors.update((t.encode(), anchor) for t in m["triggers"])
                elif kind == "pem":
                    self._pem_end = re.compile(m["end"].encode())
                    self._pem_rule = rule.id
                    triggers = [t.encode() for t in m["triggers"]]
                    add(m["begin"].encode(), self._pem_handler, triggers)
                    literals.update(triggers)
                elif kind == "url-userinfo":
                    self._url_rule = rule.id
                    add(b"@", self._url_handler, [b"@"])
                    literals.add(b"@")
                elif kind == "key":
                    key_triggers.extend(t for t in m["key_triggers"] if t not in key_triggers)
                    self._key_matchers.append(_KeyMatcher(
                        rule.id,
                        tuple(re.compile(p) for p in m.get("keys", [])),
                        tuple(re.compile(p) for p in m.get("keys_raw", [])),
                        tuple(re.compile(p) for p in m.get("exclude", [])),
                        KeyClass(rule.id, int(m.get("space_separator_min_length", 0)),
                                 bool(m.get("skip_path_values", False))),
                    ))
                elif kind == "context":
                    self._contexts.setdefault(m["when"], []).append(
                        (rule.id, re.compile(m["pattern"].encode())))
                elif kind == "argv":
                    self._argv = ArgvScanner(
                        rule.id, {n: ToolSpec.from_dict(t) for n, t in m["tools"].items()},
                        self._key_rule)
        if key_triggers:
            add(b"</key>", self._plist_key_handler, [b"</key>"])          # plist: <key>Password</key>
            literals.add(b"</key>")
            kv_words = [t.encode() for t in sorted(key_triggers, key=len, reverse=True)]
            kv_alternative = len(alternatives)
            add(b"(?:" + b"|".join(map(re.escape, kv_words)) + b")" + _KV_TAIL, self._kv_handler, kv_words)
            literals.update(kv_words)
        self.keywords = tuple(dict.fromkeys(k.strip().lower() for k in keywords if k and k.strip()))
        if self.keywords:
            self._markers["keyword"] = rules.marker.format(id="keyword").encode()
            for word in sorted(self.keywords, key=len, reverse=True):
                add(re.escape(word.encode()), self._keyword_handler, [word.encode()])
                literals.add(word.encode())
        self._rx = re.compile(b"|".join(alternatives))
        self._handlers: dict[int, Callable[..., Optional[int]]] = {
            self._rx.groupindex[f"h{i}"]: h for i, h in enumerate(handlers)}
        # A literal that starts with a shorter one is found at the same places by it
        # (context anchors are kept as they are: they are checked per literal).
        ordered = sorted(literals, key=len)
        main = [lit for i, lit in enumerate(ordered)
                if not any(lit.startswith(short) for short in ordered[:i]) or lit in self._anchors]
        # One automaton finds the words of every kind: the main rules' triggers, the
        # vendor rules' keywords and the tool names that start a command line.
        vendor_kw = vendor.keywords if vendor is not None else {}
        tools = self._argv.triggers if self._argv is not None else ()
        # The main words come first: an index below ``_n_main`` is one of them.
        self._literals = tuple(dict.fromkeys([*main, *sorted(vendor_kw), *tools]))
        self._n_main = len(main)
        self._finder = LiteralFinder(self._literals)
        self._anchor_of = tuple(self._anchors.get(lit) for lit in self._literals)
        self._vendor_of = tuple(vendor_kw.get(lit, ()) for lit in self._literals)
        self._tool_of = tuple(lit if lit in tools else None for lit in self._literals)
        self._shared = frozenset(i for i in range(self._n_main) if self._vendor_of[i])
        self._harmless = self._harmless_filter(
            [a for i, a in enumerate(alternatives) if i != kv_alternative],
            [b for i, b in enumerate(starts) if i != kv_alternative], kv_words) if key_triggers else None
        g = self._rx.groupindex
        if key_triggers:
            self._kv_value, self._kv_xml = g["kvv"], g["kvx"]
            self._kv_rest, self._kv_sep = g["kvrest"], g["kvsep"]
            self._kv_nl, self._kv_end = g["kvnl"], g["kvend"]

    def _harmless_filter(self, others: list[bytes], other_starts: list[tuple[bytes, ...]],
                         kv_words: list[bytes]) -> Optional[re.Pattern[bytes]]:
        """A pattern that matches at a trigger position exactly when the key handler would
        turn the candidate there down and no other rule could match at it.

        ``scan`` drops such positions before any per-hit Python work: on ordinary logs
        they are nearly all of them.  Two kinds, each pinned down so that the answer
        cannot depend on the text around it:

        * a word of :data:`HARMLESS_WORDS` standing alone (no key-name byte on either
          side, no ``two_word_key_prefixes`` word before it): every path of the key
          handler classifies just that word, which is never a secret in any letter case;
        * a key trigger whose name runs to the end of its line ("invalid credentials"):
          the key/value pattern needs a separator after the name, so it cannot match.

        A position is only dropped when the trigger is the only word of the automaton
        that can start there (a vendor keyword or tool name there still counts), the
        trigger anchors no context rule, and no other alternative of the combined
        pattern (rules, keywords) matches there: the pattern checks that itself.
        """
        def sole_start(head: bytes) -> Optional[bytes]:
            # The one literal that can begin where text beginning with ``head`` begins,
            # when it is a key trigger that feeds nothing else.
            found = [i for i, lit in enumerate(self._literals) if lit.startswith(head) or head.startswith(lit)]
            if len(found) != 1:
                return None
            i = found[0]
            lit = self._literals[i]
            if lit not in kv_words or i in self._shared or self._anchor_of[i] or self._tool_of[i]:
                return None
            return lit

        def never_a_key(word: str) -> bool:
            # The handler classifies the original bytes: try the word in every letter case.
            cases = product(*({c.lower(), c.upper()} for c in word))
            return all(self._classify("".join(v)) is None for v in cases)

        prefixes: dict[int, list[bytes]] = {}
        for word in sorted(self.rules.two_word_key_prefixes):
            prefixes.setdefault(len(word), []).append(re.escape(word.encode()))
        branches: list[bytes] = []
        heads: list[bytes] = []
        for word in HARMLESS_WORDS:
            w = word.encode()
            if not never_a_key(word):
                continue
            for trigger in kv_words:
                at = w.find(trigger)
                while at >= 0:
                    if sole_start(w[at:]) == trigger:
                        left = re.escape(w[:at])
                        branch = [b"(?=" + re.escape(w[at:]) + b"(?!" + _NAME_CHAR + b"))",
                                  b"(?<=" + left + b")" if at else b"",
                                  b"(?<!" + _NAME_CHAR + left + b")"]
                        branch += [b"(?<!(?:" + b"|".join(words) + b") " + left + b")"
                                   for words in prefixes.values()]
                        branches.append(b"".join(branch))
                        heads.append(w[at:])
                    at = w.find(trigger, at + 1)
        eol = [t for t in kv_words if sole_start(t) == t]
        if eol:
            branches.append(b"(?=(?:" + b"|".join(map(re.escape, eol)) + b")" + _NAME_CHAR + rb"*(?:[\r\n]|\Z))")
            heads.extend(eol)
        if not branches:
            return None
        # Only the alternatives that can begin where one of these words begins can match.
        rivals = [alt for alt, begins in zip(others, other_starts)
                  if any(b.startswith(h) or h.startswith(b) for b in begins for h in heads)]
        veto = b"(?!" + b"|".join(rivals) + b")" if rivals else b""
        return re.compile(b"(?:" + b"|".join(branches) + b")" + veto)

    # -- public helpers (shared with the structured redactor) ----------------------
    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(self._markers)

    def classify_key(self, name: str) -> Optional[KeyClass]:
        """The rule a key name falls under (None: not a secret).

        ``systemKey`` (an identifier) and ``clientKey`` (a file path) are kept by
        ``keep_keys``; file names (``password.txt``) are never keys.
        """
        cached = self._key_cache.get(name)
        if cached is not None or name in self._key_cache:
            return cached
        result = self._classify(name)
        if len(self._key_cache) < 4096:
            self._key_cache[name] = result
        return result

    def _classify(self, name: str) -> Optional[KeyClass]:
        core = name.strip().strip("'\"").lstrip("-")
        norm = _normalise_key(core)
        if not norm or norm in self.rules.keep_keys:
            return None
        if "." in core and core.rsplit(".", 1)[1].lower() in self.rules.file_extensions:
            return None
        for km in self._key_matchers:
            if any(p.search(norm) for p in km.keys) or any(p.search(core) for p in km.keys_raw):
                if any(x.search(norm) for x in km.exclude):
                    continue
                return km.cls
        return None

    def _key_rule(self, name: str) -> Optional[str]:
        cls = self.classify_key(name)
        return cls.rule_id if cls is not None else None

    def describe_hit(self, rule_id: str) -> Optional[dict[str, Any]]:
        """Report entry of a hit id that is not one of the rule set's own rules."""
        return self.vendor.describe(rule_id) if self.vendor is not None else None

    def is_placeholder(self, value: bytes) -> bool:
        """Values that hold no secret (empty, true/false/null, ``****``, already redacted)."""
        v = value.strip().lower()
        return (v in self._placeholders or _ALL_STARS.fullmatch(v) is not None
                or b"redacted:" in v or is_variable(value.strip()))

    def replacement(self, rule_id: str, secret: bytes) -> bytes:
        """What a secret becomes: the marker, after a known public prefix of a long one."""
        marker = self._markers.get(rule_id)
        if marker is None:
            marker = self._markers[rule_id] = self.rules.marker.format(id=rule_id).encode()
        if len(secret) >= self.rules.keep_prefix_min_length:
            for prefix in self._keep_prefixes:
                if secret.startswith(prefix):
                    return prefix + ELLIPSIS + marker
        return marker

    # -- scanning ------------------------------------------------------------------
    def scan(self, orig: bytes, state: ScanState,
             extents: Optional[list[tuple[int, int]]] = None, argv_lines: bool = False) -> list[Span]:
        """Spans to replace in ``orig`` (complete lines, or a piece of a long line).

        ``state`` is updated for the next block.  ``extents`` (when given) receives
        the full extent of every accepted match, which the long-line cutter uses to
        avoid cutting through one.  ``argv_lines``: every line is a command line (a
        process or service listing), not only those where a tool name occurs.
        """
        low, found = self._finder.lower_matches(orig)
        sc = _Scan(orig, low, state, extents)
        sc.matcher = self
        if state.aws_carry:
            sc.ctx_lines.append(0)
        pos = self._carried(sc, 0)
        positions: list[int] = []
        vendor_hits: list[tuple[int, tuple[int, ...]]] = []
        tool_hits: list[int] = []
        ctx_lines = sc.ctx_lines
        anchor_of, n_main = self._anchor_of, self._n_main
        if self._harmless is not None and found:
            # The common harmless candidates go at C speed, before any per-hit Python.
            found = compress(found, map(not_, map(self._harmless.match, repeat(low), map(itemgetter(1), found))))
        for index, p, _ in found:
            if index < n_main:
                positions.append(p)
                anchor = anchor_of[index]
                if anchor is not None and anchor.match(orig, p):
                    ctx_lines.append(p)          # e.g. an AWS key id, whichever rule redacts it
                if index not in self._shared:
                    continue                     # (a word of both kinds goes on below)
            rules = self._vendor_of[index]
            if rules:
                vendor_hits.append((p, rules))
            tool = self._tool_of[index]
            if tool is not None and not argv_lines and self._argv.is_tool_at(low, p, tool):
                tool_hits.append(p)
        if positions:
            positions.sort()
            match = self._rx.match
            handlers = self._handlers
            for p in positions:
                if p < pos:
                    continue
                m = match(low, p)
                if m is None:
                    continue
                nxt = handlers[m.lastindex](sc, m)
                if nxt is None:
                    continue
                pos = nxt
                if state.pem or state.yaml is not None or state.plist is not None:
                    pos = self._carried(sc, nxt)
        if argv_lines or tool_hits:
            self._argv_pass(sc, tool_hits, argv_lines)
        if vendor_hits:
            vendor_hits.sort()
            self.vendor.scan(orig, vendor_hits, sc.add_vendor)
        if sc.ctx_lines:
            self._context_pass(sc)
        last_nl = orig.rfind(b"\n")
        state.aws_carry = bool(sc.ctx_lines) and max(sc.ctx_lines) > last_nl and not orig.endswith(b"\n")
        return sc.spans

    def _carried(self, sc: "_Scan", pos: int) -> int:
        """Go on with a value that continues over lines (PEM body, YAML, plist)."""
        state = sc.state
        if state.pem:
            pos = self._pem_body(sc, pos)
        if state.yaml is not None:
            pos = self._yaml_body(sc, pos)
        if state.plist is not None:
            pos = self._plist_body(sc, pos)
        return pos

    def _argv_pass(self, sc: "_Scan", tool_hits: list[int], every_line: bool) -> None:
        """Command lines: every line of a listing, else from each tool word to the end
        of its line (or of the quotes the command sits in)."""
        orig, argv = sc.orig, self._argv

        def add(s: int, e: int, rule_id: str) -> None:
            value = orig[s:e]
            if not self.is_placeholder(value) and sc.add(s, e, self.replacement(rule_id, value), rule_id):
                if sc.extents is not None:
                    sc.extents.append((s, e))

        if every_line:
            pos, n = 0, len(orig)
            while pos < n:
                nl = orig.find(b"\n", pos)
                end = n if nl < 0 else nl
                argv.scan_line(orig, pos, end, add, True)
                pos = end + 1
            return
        last_end = -1
        for p in sorted(tool_hits):
            if p < last_end:
                continue
            nl = orig.find(b"\n", p)
            end = len(orig) if nl < 0 else nl
            if p and orig[p - 1] in b"\"'":
                close = orig.find(orig[p - 1:p], p, end)
                end = close if close >= 0 else end
            argv.scan_line(orig, p, end, add, False)
            last_end = end

    def _yaml_body(self, sc: "_Scan", pos: int) -> int:
        """The lines of a YAML value below its key (next-line value, block scalar)."""
        orig, state = sc.orig, sc.state
        indent, rule_id, counted = state.yaml
        n = len(orig)
        while pos < n:
            nl = orig.find(b"\n", pos)
            end = n if nl < 0 else nl
            content = orig[pos:end].rstrip(b"\r")
            text = content.lstrip(b" \t")
            if text:
                if len(content) - len(text) <= indent:
                    state.yaml = None
                    return pos
                start = pos + len(content) - len(text)
                sc.add(start, pos + len(content), b"" if counted else self._markers[rule_id],
                       None if counted else rule_id)
                if sc.extents is not None:
                    sc.extents.append((start, pos + len(content)))
                counted = True
                state.yaml = (indent, rule_id, True)
            pos = end + 1 if nl >= 0 else n
        return pos

    def _plist_body(self, sc: "_Scan", pos: int) -> int:
        """The <string>/<data> element after a plist <key> that names a secret."""
        orig, low, state = sc.orig, sc.low, sc.state
        rule_id, close = state.plist
        n = len(orig)
        if close is None:
            while pos < n and orig[pos] in b" \t\r\n":
                pos += 1
            if pos >= n:
                return pos                         # the value element is in the next block
            m = _PLIST_OPEN.match(low, pos)
            if m is None:
                state.plist = None                 # <true/>, <dict>...: nothing to hide here
                return pos
            pos = m.end()
            close = b"</" + m.group(1) + b">"
            marker = self._markers[rule_id]
        else:
            marker = b""
        end = low.find(close, pos, pos + MAX_MATCH)
        if end < 0:
            if sc.add(pos, n, marker, rule_id if marker else None) and sc.extents is not None:
                sc.extents.append((pos, n))
            state.plist = (rule_id, close)
            return n
        if end > pos and sc.add(pos, end, marker, rule_id if marker else None) and sc.extents is not None:
            sc.extents.append((pos, end))
        state.plist = None
        return end + len(close)

    def _context_pass(self, sc: "_Scan") -> None:
        """Redact context rules (AWS secret next to a key id) on the lines that need it."""
        patterns = [pair for rules in self._contexts.values() for pair in rules]
        orig = sc.orig
        done: set[int] = set()
        for p in sc.ctx_lines:
            ls = orig.rfind(b"\n", 0, p) + 1 if p else 0
            if ls in done:
                continue
            done.add(ls)
            le = orig.find(b"\n", p)
            le = len(orig) if le < 0 else le
            for rule_id, rx in patterns:
                for cm in rx.finditer(orig, ls, le):
                    s, e = cm.span()
                    if sc.add(s, e, self.replacement(rule_id, cm.group()), rule_id) and sc.extents is not None:
                        sc.extents.append((s, e))

    # -- handlers: (scan, match) -> where scanning goes on, or None: not a secret here
    def _regex_handler(self, rule_id: str, spec: Mapping[str, Any], group: Optional[str]):
        not_after = _byte_table(spec.get("not_after"))
        not_before = _byte_table(spec.get("not_before"))
        verify = re.compile(spec["verify"].encode()) if spec.get("verify") else None
        then = spec.get("then")

        def handle(sc: _Scan, m: re.Match[bytes]) -> Optional[int]:
            low = sc.low
            start, end = m.start(), m.end()
            if not_after is not None and start and not_after[low[start - 1]]:
                return None
            if not_before is not None and end < len(low) and not_before[low[end]]:
                return None
            s, e = m.span(group) if group else (start, end)
            if s < 0:
                return None
            secret = sc.orig[s:e]
            if verify is not None and not verify.fullmatch(secret):
                return None
            if self.is_placeholder(secret):
                return end
            if not sc.add(s, e, self.replacement(rule_id, secret), rule_id):
                return None
            if sc.extents is not None:
                sc.extents.append((start, end))
            if then:
                sc.ctx_lines.append(start)
            return s           # look inside too: a key name may hide in what was taken

        return handle

    def _keyword_handler(self, sc: _Scan, m: re.Match[bytes]) -> Optional[int]:
        s, e = m.start(), m.end()
        if not sc.add(s, e, self._markers["keyword"], "keyword"):
            return None
        if sc.extents is not None:
            sc.extents.append((s, e))
        return e

    def _url_handler(self, sc: _Scan, m: re.Match[bytes]) -> Optional[int]:
        low = sc.low
        at = m.start()
        q = low.rfind(b"://", max(0, at - 1024), at)
        if q < 0:
            return None
        ui_start = q + 3
        userinfo = low[ui_start:at]
        if _USERINFO_BAD.search(userinfo):
            return None
        end = _AUTHORITY_END.search(low, at + 1)
        if low.find(b"@", at + 1, end.start() if end else len(low)) >= 0:
            return None     # the last '@' of the authority ends the password
        colon = userinfo.find(b":")
        if colon < 0 or ui_start + colon + 1 == at:
            return None
        s = ui_start + colon + 1
        secret = sc.orig[s:at]
        if self.is_placeholder(secret):
            return at + 1
        if not sc.add(s, at, self.replacement(self._url_rule, secret), self._url_rule):
            return None
        if sc.extents is not None:
            sc.extents.append((q, at + 1))
        return at + 1

    def _pem_handler(self, sc: _Scan, m: re.Match[bytes]) -> Optional[int]:
        low = sc.low
        begin_end = m.end()
        nl = low.find(b"\n", begin_end)
        line_end = len(low) if nl < 0 else nl
        content_end = line_end - 1 if line_end > begin_end and low[line_end - 1] == 13 else line_end
        em = self._pem_end.search(low, begin_end, min(content_end, begin_end + MAX_MATCH))
        marker = self._markers[self._pem_rule]
        if em is not None:
            if not sc.add(begin_end, em.start(), marker, self._pem_rule):
                return None
            if sc.extents is not None:
                sc.extents.append((m.start(), em.end()))
            return em.end()
        if not sc.add(begin_end, content_end, marker, self._pem_rule):
            return None
        if sc.extents is not None:
            sc.extents.append((m.start(), line_end))
        sc.state.pem = True
        return line_end + 1 if nl >= 0 else line_end

    def _pem_body(self, sc: _Scan, pos: int) -> int:
        """Drop the lines of an open PEM block until its END line (or until the text
        plainly stops looking like one: then the key was cut short and the log goes on)."""
        orig, low, state = sc.orig, sc.low, sc.state
        n = len(orig)
        while state.pem and pos < n:
            nl = orig.find(b"\n", pos)
            line_end = n if nl < 0 else nl
            em = self._pem_end.search(low, pos, min(line_end, pos + MAX_MATCH))
            if em is not None:
                if em.start() > pos:
                    sc.add(pos, em.start(), b"", None)
                state.pem = False
                return em.start()
            nxt = line_end + 1 if nl >= 0 else n
            if _PEM_BODY.fullmatch(orig, pos, line_end):
                sc.add(pos, nxt, b"", None)
            else:
                runs = list(_B64_RUN.finditer(orig, pos, line_end))
                if not runs:
                    state.pem = False
                    return pos
                for r in runs:
                    sc.add(r.start(), r.end(), b"", None)
            pos = nxt
        return pos

    def _kv_handler(self, sc: _Scan, m: re.Match[bytes]) -> Optional[int]:
        # Ordered so the common harmless candidates ("Token refreshed", "systemKey=")
        # are turned down with the least work.
        low = sc.low
        p = m.start()
        vs = m.start(self._kv_value)
        if vs >= 0:
            xml = False
            ve = m.end(self._kv_value)
            sep_s, sep_e = m.span(self._kv_sep)
            spaced = low[sep_s:sep_e].isspace()
        else:
            vs, ve = m.span(self._kv_xml)
            if vs < 0:
                return self._kv_other(sc, m)
            xml = spaced = True
        ks = _key_start(low, p)
        if ks and low[ks - 1] in b"\"'" and _XML_NAME_ATTR.search(low, max(0, ks - 24), ks):
            return self._xml_pair(sc, ks, m.end(self._kv_rest))
        alone = False
        if spaced and not xml and ve - vs < 20 and low[ks] != 45:
            # "token refreshed": not a flag, too short for a key - unless the pair is a whole
            # line ("bindpw s3cret" in ldap.conf, "password s3cret" in .netrc), the key/value
            # layout of many config files.
            if not _alone_on_line(low, ks, m.end()):
                return None
            alone = True
        if ks >= 2 and low[ks - 1] == 32 and low[ks] != 45:   # "connect key: ..." (never a --flag)
            lo = max(0, ks - 18)
            ws = _name_start(low, lo, ks - 1)
            if ((ws or not lo) and low[ws:ks - 1].decode("latin-1") in self.rules.two_word_key_prefixes
                    and not (ws and low[ws - 1] in (47, 92))):
                ks = ws
        before = low[ks - 1] if ks else 0
        if before == 47 or before == 92:         # '/' or '\': a file path, not a key
            return None
        if spaced and low[ks] == 45 and _GLUED_SHORT_OPTION.match(sc.orig, ks):
            return None                          # -pSECRET next: the flag holds the value itself
        if xml and before != 60:                 # <key>value</key>
            return None
        cls = self.classify_key(sc.orig[ks:m.end(self._kv_rest)].decode("latin-1"))
        if cls is None:
            return None
        if spaced and not xml and low[ks] != 45 and not alone and not (
                cls.space_separator_min_length and ve - vs >= cls.space_separator_min_length) \
                and not _alone_on_line(low, ks, m.end()):
            return None                          # "--password value" / "connect key <40 chars>" only
        if not xml and low[vs] in b"|>" and _BLOCK_SCALAR.match(low, vs, ve) and \
                b":" in low[sep_s:sep_e] and low[ve:ve + 2].strip(b" \t\r") in (b"", b"\n"):
            return self._kv_below(sc, m)         # "key: |" / "key: >-": a YAML block scalar
        if not xml:
            first = low[vs]
            if first != 34 and first != 39 and not (first == 92 and low[vs + 1:vs + 2] == b'"'):
                # A bare value runs to a blank or a quote; closing brackets at its end, and
                # a , or ; just before them, are the structure around it ("true," in JSON).
                tail = _BARE_TAIL.search(low, vs + 1, ve)
                ve = tail.start() if tail else ve
            vs, ve = _unquote(sc.orig[vs:ve], vs)
            if before == 63 or before == 38:     # ?key=value&next=...: a URL query ends at & or #
                cut = _QUERY_END.search(low, vs, ve)
                ve = cut.start() if cut else ve
        value = sc.orig[vs:ve]
        if self.is_placeholder(value):
            return m.end()
        if cls.skip_path_values and _PATHLIKE.match(value):
            return None
        if not sc.add(vs, ve, self.replacement(cls.rule_id, value), cls.rule_id):
            return None
        if sc.extents is not None:
            sc.extents.append((ks, m.end()))
        return vs


    def _kv_other(self, sc: "_Scan", m: re.Match[bytes]) -> Optional[int]:
        """The rarer key forms: a YAML key ending its line, an XML attribute naming a
        setting after its value."""
        if m.start(self._kv_nl) >= 0:                # "key:" / "key: |" ending the line (YAML)
            sep = sc.low[m.start(self._kv_sep):m.end(self._kv_sep)]
            return self._kv_below(sc, m) if b":" in sep else None
        ks = _key_start(sc.low, m.start())          # name="ApiSecret"/> : the value came first
        low = sc.low
        if ks and low[ks - 1] in b"\"'" and _XML_NAME_ATTR.search(low, max(0, ks - 24), ks):
            return self._xml_pair(sc, ks, m.end(self._kv_rest))
        return None

    def _plist_key_handler(self, sc: "_Scan", m: re.Match[bytes]) -> Optional[int]:
        """``<key>Password</key>``: the value is the next <string> or <data> element."""
        low, p = sc.low, m.start()
        ks = low.rfind(b"<key>", max(0, p - 128), p)
        if ks < 0 or low.find(b"<", ks + 5, p) >= 0:
            return None
        cls = self.classify_key(sc.orig[ks + 5:p].decode("latin-1"))
        if cls is None:
            return None
        sc.state.plist = (cls.rule_id, None)
        return self._plist_body(sc, m.end())

    def _kv_below(self, sc: "_Scan", m: re.Match[bytes]) -> Optional[int]:
        """A secret key whose value is on the lines below: YAML ``key:`` / ``key: |``
        at the end of a line."""
        orig = sc.orig
        ks = _key_start(sc.low, m.start())
        cls = self.classify_key(orig[ks:m.end(self._kv_rest)].decode("latin-1"))
        if cls is None:
            return None
        ls = orig.rfind(b"\n", 0, ks) + 1
        line = orig[ls:ks]
        indent = len(line) - len(line.lstrip(b" \t"))
        if line.strip(b" \t-"):
            indent = len(line) - len(line.lstrip(b" \t-"))   # "- key:" in a list: deeper lines
        nl = orig.find(b"\n", m.end())
        if nl < 0:
            sc.state.yaml = (indent, cls.rule_id, False)
            return len(orig)
        sc.state.yaml = (indent, cls.rule_id, False)
        return self._yaml_body(sc, nl + 1)

    def _xml_pair(self, sc: "_Scan", ks: int, ke: int) -> Optional[int]:
        """``<add key="BindPassword" value="..."/>``: the name in one attribute, the
        secret in another of the same element (either order)."""
        low, orig = sc.low, sc.orig
        cls = self.classify_key(orig[ks:ke].decode("latin-1"))
        if cls is None:
            return None
        ts = low.rfind(b"<", max(0, ks - 4096), ks)
        te = low.find(b">", ke, ke + 8192)
        if ts < 0 or te < 0 or low.find(b">", ts, ks) >= 0:
            return None                      # not inside one element's start tag
        found = _XML_VALUE_ATTR.search(low, ts, te)
        if found is not None:
            vs, ve = found.span(2)
        elif low[te - 1] != 47:              # <property name="db.password">value</property>
            vs = te + 1
            ve = low.find(b"<", vs, vs + 8192)
            if ve < 0 or low.find(b"\n", vs, ve) >= 0:
                return None
        else:
            return None
        value = orig[vs:ve]
        if ve <= vs or self.is_placeholder(value):
            return None
        if not sc.add(vs, ve, self.replacement(cls.rule_id, value), cls.rule_id):
            return None
        if sc.extents is not None:
            sc.extents.append((ts, te + 1))
        return ke


_PLIST_OPEN = re.compile(rb"<(string|data)>")
_BLOCK_SCALAR = re.compile(rb"[|>][-+0-9]{0,2}\Z")
_QUERY_END = re.compile(rb"[&#]")
_BARE_TAIL = re.compile(rb"[,;]?[)\]}>]{0,64}\Z")
# "-pS3cret" / "-p0wd": a one-letter option with its value glued on, never a key name.
_GLUED_SHORT_OPTION = re.compile(rb"-[a-z][A-Z0-9!@#$%^&*]")
_XML_NAME_ATTR = re.compile(rb"\b(?:key|name|id|setting|property)[ \t]{0,4}=[ \t]{0,4}[\"']\Z")
_XML_VALUE_ATTR = re.compile(rb"\b(value|val|data|content)[ \t]{0,4}=[ \t]{0,4}[\"']([^\"'\r\n]{0,8192})[\"']")


def _alone_on_line(low: bytes, ks: int, end: int) -> bool:
    """True when only blanks are before ``ks`` and after ``end`` on their line."""
    if end < len(low) and low[end] not in b"\r\n" or ks and low[ks - 1] not in b" \t\n":
        return False                                  # the common case, decided at once
    ls = low.rfind(b"\n", 0, ks) + 1
    if low[ls:ks].strip(b" \t"):
        return False
    nl = low.find(b"\n", end)
    return not low[end:nl if nl >= 0 else len(low)].strip(b" \t\r")


class _Scan:
    """What the handlers of one :meth:`Matcher.scan` call share."""

    __slots__ = ("orig", "low", "state", "extents", "spans", "ctx_lines", "matcher")

    def __init__(self, orig: bytes, low: bytes, state: ScanState,
                 extents: Optional[list[tuple[int, int]]]):
        self.orig = orig
        self.low = low
        self.state = state
        self.extents = extents
        self.spans: list[Span] = []
        self.ctx_lines: list[int] = []
        self.matcher: Optional["Matcher"] = None

    def add_vendor(self, s: int, e: int, rule_id: str, ms: int, me: int) -> None:
        """A vendor token (the matcher's replacement text is set by ``scan``)."""
        if self.add(s, e, self.matcher.replacement(rule_id, self.orig[s:e]), rule_id) \
                and self.extents is not None:
            self.extents.append((ms, me))

    def add(self, s: int, e: int, replacement: bytes, rule_id: Optional[str]) -> bool:
        """Record a replacement; False when it adds nothing to what is replaced.

        Overlapping matches merge: the union is replaced (with the first one's
        marker), so a longer secret found second is never cut short by a shorter
        match found first.
        """
        spans = self.spans
        if not spans or s >= spans[-1][1]:
            spans.append((s, e, replacement, rule_id))
            return True
        i = bisect.bisect_right(spans, (s, e))
        lo = i
        while lo and spans[lo - 1][1] > s:
            lo -= 1
        hi = i
        while hi < len(spans) and spans[hi][0] < e:
            hi += 1
        if lo == hi:
            spans.insert(i, (s, e, replacement, rule_id))
            return True
        first = spans[lo]
        start, end = min(s, first[0]), max(e, spans[hi - 1][1])
        if hi - lo == 1 and (start, end) == (first[0], first[1]):
            return False
        spans[lo:hi] = [(start, end, first[2], first[3])]
        return True


def assemble(orig: bytes, spans: Iterable[Span]) -> bytes:
    """``orig`` with ``spans`` (sorted, not overlapping) replaced."""
    out: list[bytes] = []
    last = 0
    for s, e, repl, _ in spans:
        if e <= last:
            continue                  # inside a span already replaced (never re-emit its bytes)
        out.append(orig[last:s] if s > last else b"")
        out.append(repl)
        last = e
    if not out:
        return orig
    out.append(orig[last:])
    return b"".join(out)


@lru_cache(maxsize=8)
def _matcher_for(rules: RuleSet, keywords: tuple[str, ...], vendor: Optional[VendorRules]) -> Matcher:
    return Matcher(rules, keywords, vendor)


_DEFAULT = object()


def compile_rules(rules: Optional[RuleSet] = None, keywords: Sequence[str] = (),
                  vendor: Any = _DEFAULT) -> Matcher:
    """A (cached) matcher for ``rules`` (default: the shipped rules), keywords and
    vendor token rules (default: the shipped gitleaks table; None: none)."""
    if vendor is _DEFAULT:
        vendor = default_vendor_rules()
    return _matcher_for(rules or default_rules(), tuple(keywords), vendor)
