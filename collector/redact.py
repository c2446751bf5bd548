"""Secret scrubbing for every text artifact, streaming, plus the redaction report.

One :class:`Redactor` per collection run holds the rules (``redact_rules``), the
optional :class:`~collector.pseudonym.Pseudonymizer` (``--obfuscate``) and what
``redaction.json`` will say.  Logs and command outputs go through a
:class:`TextScrubber` chunk by chunk; small config files through
:meth:`Redactor.structured`, which knows JSON and INI / ``key=value`` layout and
then runs the text scrubber over the result as well.

Command outputs that list processes or services (decided from the artifact name gather
gives, e.g. ``commands/ps-aux.txt``: :func:`is_command_listing`) are read as command lines
on every line; ``redaction.json`` names the rule behind every hit, and for vendor tokens
the upstream gitleaks rule id.

Fail closed.  Any exception out of ``feed``/``close``/``structured`` means the
artifact could not be scrubbed: the caller drops *everything* it wrote for that
artifact and records it, so nothing unscrubbed reaches the bundle::

    scrubber = redactor.text_stream(name)
    try:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                out.write(scrubber.feed(chunk))
            out.write(scrubber.close())
    except Exception as exc:          # scrubbing (or writing) failed
        os.unlink(tmp)
        redactor.failed(name, f"redaction failed: {exc}")

Hits are recorded in the report only by ``close()`` (and ``failed()`` removes
them again), so a dropped artifact never appears as scrubbed.

Streaming model: the scrubber works on bytes (non-UTF-8 bytes pass through
untouched) and only on complete lines, so a secret split across two ``feed()``
calls is seen whole; the incomplete last line is held back.  A line longer than
``MAX_LINE`` (1 MiB) is cut into pieces, each cut placed where no match (and no
pseudonym) crosses it, so memory stays bounded.  A PEM private key block is a
state carried from line to line.  UTF-16 text (Windows logs; with a BOM, or
plainly UTF-16LE/BE without one) is transcoded to UTF-8 and the report says so.
"""
from __future__ import annotations

import codecs
import json
import re
import threading
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .vendor_rules import VendorRules, default_vendor_rules
from .redact_rules import (MAX_MATCH, KeyClass, Matcher, RuleError, RuleSet, ScanState,
                           Span, assemble, compile_rules, default_rules)

__all__ = ["RULESET_VERSION", "Redactor", "TextScrubber", "RedactionError", "looks_binary",
           "utf16_encoding", "MAX_LINE", "RuleSet", "RuleError"]

#: Version of the shipped rule set (``collector/data/redaction_rules.json``).
RULESET_VERSION: str = default_rules().version

#: Lines longer than this are cut into pieces (bounded memory).
MAX_LINE = 1 << 20
# A cut is placed in the middle half of a window, well before its end, so that any
# match that starts before the cut also ends inside the window.
_CUT_MARGIN = 4 * MAX_MATCH
_CUT_CHARS = re.compile(rb"[\s,;&{}\[\]()<>\"'|]")
_SNIFF_BYTES = 64

BOM_UTF8 = codecs.BOM_UTF8


#: Command outputs whose every line is a command line (processes, services, tasks):
#: decided from the artifact name gather already gives (``commands/ps-aux.txt``).
_LISTING = re.compile(r"(?:^|/)commands/[^/]*(?:\bps\b|ps-|process|tasklist|wmic|service|systemctl|"
                      r"launchctl|sc-|schtasks|cimi|get-|crontab)", re.I)


def is_command_listing(artifact: str) -> bool:
    """True for command outputs that list processes or services (their lines are argv)."""
    return bool(_LISTING.search(artifact))


class RedactionError(RuntimeError):
    """An artifact could not be scrubbed safely; the caller must drop it."""


# ----------------------------------------------------------------------------- sniffing

def utf16_encoding(sample: bytes) -> Optional[str]:
    """``"utf-16-le"`` / ``"utf-16-be"`` when ``sample`` is UTF-16 text (BOM, or the
    telltale NUL in every other byte of mostly-ASCII text), else None."""
    if sample.startswith(codecs.BOM_UTF16_LE) and not sample.startswith(codecs.BOM_UTF32_LE):
        return "utf-16-le"
    if sample.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    sample = sample[:8192]
    if len(sample) < 8:
        return None
    sample = sample[: len(sample) & ~1]
    even, odd = sample[0::2], sample[1::2]
    half = len(even)
    if odd.count(0) >= 0.9 * half and even.count(0) <= 0.05 * half:
        return "utf-16-le"
    if even.count(0) >= 0.9 * half and odd.count(0) <= 0.05 * half:
        return "utf-16-be"
    return None


_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f\v\b\x1b") + b"\x7f"
_NUL_RUNS = re.compile(rb"\x00{16,}")


def looks_binary(sample: bytes) -> bool:
    """True when the first 8 KiB look like binary data rather than text.

    Text: UTF-8 / ASCII / Latin-1 logs, UTF-16 logs (with a BOM or without), logs
    whose start is a run of NUL bytes (the hole ``copytruncate`` leaves behind).
    Binary: other NUL bytes, or more than 10 % control bytes.
    """
    sample = sample[:8192]
    if not sample:
        return False
    if utf16_encoding(sample):
        return False
    if sample.startswith(BOM_UTF8):
        sample = sample[3:]
    if b"\x00" in sample:
        sample = _NUL_RUNS.sub(b"", sample)
        if not sample or b"\x00" in sample:
            return True
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    return controls > 0.10 * len(sample)


# ----------------------------------------------------------------------------- streaming

class TextScrubber:
    """Scrubs one text artifact fed in chunks of any size.

    ``feed`` returns the scrubbed bytes ready to write (possibly empty: an
    incomplete last line is held back); ``close`` returns the rest and records
    this artifact's hits in the :class:`Redactor`'s report.  ``hits`` maps rule
    id to count for this artifact (pseudonyms are counted separately in
    ``pseudonyms``).  Raises on failure: see the module docstring (fail closed).
    """

    def __init__(self, redactor: "Redactor", artifact: str, sniff: bool = True):
        self.artifact = artifact
        self.hits: dict[str, int] = {}
        self.pseudonyms: dict[str, int] = {}
        #: Set to "utf-16-le"/"utf-16-be" when the input was transcoded to UTF-8.
        self.encoding: Optional[str] = None
        self._redactor = redactor
        self._matcher: Matcher = redactor._matcher
        # Process and service listings: every line is a command line.
        self._argv_lines = is_command_listing(artifact)
        self._pseudo = redactor.pseudonymizer
        self._state = ScanState()
        self._parts: list[bytes] = []
        self._size = 0
        self._sniffing = sniff
        self._sniff_buf = b""
        self._decoder: Optional[codecs.IncrementalDecoder] = None
        self._closed = False

    def feed(self, data: bytes) -> bytes:
        if self._closed:
            raise ValueError(f"{self.artifact}: feed() after close()")
        if not data:
            return b""
        data = bytes(data)
        if self._sniffing:
            data = self._sniff(data, final=False)
        elif self._decoder is not None:
            data = self._decoder.decode(data).encode("utf-8")
        if not data:
            return b""
        self._parts.append(data)
        self._size += len(data)
        if b"\n" in data or self._size > MAX_LINE:
            return self._drain(final=False)
        return b""

    def close(self) -> bytes:
        """The rest of the artifact; records the hits into the report (once)."""
        if self._closed:
            return b""
        out = self.finish()
        self._redactor._record(self)
        return out

    def finish(self) -> bytes:
        """Like :meth:`close` without recording (for callers that merge hits)."""
        if self._closed:
            return b""
        if self._sniffing:
            data = self._sniff(b"", final=True)
            if data:
                self._parts.append(data)
                self._size += len(data)
        if self._decoder is not None:
            tail = self._decoder.decode(b"", final=True).encode("utf-8")
            if tail:
                self._parts.append(tail)
                self._size += len(tail)
        out = self._drain(final=True)
        self._closed = True
        return out

    # -- internals -------------------------------------------------------------
    def _sniff(self, data: bytes, final: bool) -> bytes:
        """Hold back the first bytes until the encoding is known.

        Decided on the first bytes only, so every chunking decides alike: a UTF-16
        BOM decides at once, two leading non-NUL bytes mean "not UTF-16" at once,
        otherwise the first ``_SNIFF_BYTES`` bytes decide.
        """
        self._sniff_buf += data
        sample = self._sniff_buf
        if len(sample) < 2 and not final:
            return b""
        bom = sample[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        if not bom and len(sample) >= 2 and sample[0] and sample[1]:
            encoding = None
        elif not bom and len(sample) < _SNIFF_BYTES and not final:
            return b""
        else:
            encoding = utf16_encoding(sample[:_SNIFF_BYTES])
        self._sniff_buf = b""
        self._sniffing = False
        if encoding is None:
            return sample
        self.encoding = encoding
        if bom:
            sample = sample[2:]
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        return self._decoder.decode(sample, final=final).encode("utf-8")

    def _drain(self, final: bool) -> bytes:
        """Scrub every complete line held (every piece, for overlong lines).

        The held parts read as one buffer without joining them first: each piece is
        copied out once (a fresh megabyte costs about as much as lower-casing it).
        Only the last part can hold a newline: ``feed`` keeps a part back only when it
        has none, and a drain leaves no complete line behind.
        """
        if not self._parts:
            return b""
        last = self._parts[-1]
        head = b"".join(self._parts[:-1])          # the held partial line, usually
        if b"\n" in head:                          # finish() may add two parts at once
            head, last = b"", head + last
        h = len(head)
        n = h + len(last)

        def piece(s: int, e: int) -> bytes:
            if s >= h:
                return last[s - h:e - h]
            if e <= h:
                return head[s:e]
            return b"".join((memoryview(head)[s:], memoryview(last)[:e - h]))

        def rfind_nl(s: int, e: int) -> int:
            at = last.rfind(b"\n", max(s - h, 0), max(e - h, 0))
            return at + h if at >= 0 else -1

        out: list[bytes] = []
        pos = 0
        while pos < n:
            limit = pos + MAX_LINE
            if limit < n:
                nl = rfind_nl(pos, limit)
                end = nl + 1 if nl >= 0 else pos + self._cut(piece(pos, limit))
            else:
                nl = rfind_nl(pos, n)
                if nl >= 0:
                    end = nl + 1
                elif final:
                    end = n
                else:
                    break
            out.append(self._scrub(piece(pos, end)))
            pos = end
        rest = piece(pos, n)
        self._parts = [rest] if rest else []
        self._size = len(rest)
        return out[0] if len(out) == 1 else b"".join(out)

    def _scrub(self, block: bytes) -> bytes:
        spans = self._matcher.scan(block, self._state, argv_lines=self._argv_lines)
        if spans:
            hits = self.hits
            for span in spans:
                rule = span[3]
                if rule:
                    hits[rule] = hits.get(rule, 0) + 1
            block = assemble(block, spans)
        if self._pseudo is not None:
            block, counts = self._pseudo.apply(block)
            for kind, count in counts.items():
                self.pseudonyms[kind] = self.pseudonyms.get(kind, 0) + count
        return block

    def _cut(self, window: bytes) -> int:
        """Where to end the next piece of a line longer than MAX_LINE (``window``: its
        next MAX_LINE bytes).

        The cut falls in the middle of the window, on a separator character when
        there is one, never inside a secret match (nor a pseudonym): every match
        that starts before it ends before it, so each piece is scrubbed exactly as
        the whole line would be.
        """
        extents: list[tuple[int, int]] = []
        self._matcher.scan(window, self._state.copy(), extents, argv_lines=self._argv_lines)
        if self._pseudo is not None:
            extents.extend(self._pseudo.extents(window))
        blocked = bytearray(len(window))
        for s, e in extents:
            if e - s > 1:
                blocked[s + 1:e] = b"\x01" * (e - s - 1)
        lo, hi = MAX_LINE // 2, MAX_LINE - _CUT_MARGIN
        for m in reversed(list(_CUT_CHARS.finditer(window, lo, hi))):
            if not blocked[m.start()]:
                return m.start()
        free = blocked.rfind(b"\x00", lo, hi)
        if free > 0:
            return free
        raise RedactionError(
            f"{self.artifact}: a line longer than {MAX_LINE} bytes has no place to cut it safely")


# ----------------------------------------------------------------------------- redactor

class Redactor:
    """One per collection run: rules, optional pseudonymizer, and the run's report.

    ``rules``: a :class:`RuleSet`, a path to a rules JSON file, or None for the
    shipped rules.  ``keywords``: words always replaced by ``[REDACTED:keyword]``
    (case-insensitive), with or without ``--obfuscate``.  ``pseudonymizer``: a
    :class:`collector.pseudonym.Pseudonymizer` applied after the secret rules.
    Safe to use from several threads (each artifact has its own scrubber).
    """

    def __init__(self, rules: RuleSet | str | Path | None = None, pseudonymizer: Any = None,
                 keywords: Sequence[str] = (), vendor_rules: Any = "default"):
        if rules is None:
            self.rules = default_rules()
        elif isinstance(rules, RuleSet):
            self.rules = rules
        elif isinstance(rules, Mapping):
            self.rules = RuleSet.from_dict(rules)
        else:
            self.rules = RuleSet.load(rules)
        self.pseudonymizer = pseudonymizer
        self.keywords = tuple(keywords)
        if vendor_rules == "default":
            vendor_rules = default_vendor_rules()
        elif isinstance(vendor_rules, (str, Path)):
            vendor_rules = VendorRules.load(vendor_rules)
        #: gitleaks-derived vendor token rules (None: off).
        self.vendor_rules: Optional[VendorRules] = vendor_rules
        self._matcher = compile_rules(self.rules, self.keywords, vendor_rules)
        self._lock = threading.Lock()
        self._artifacts: dict[str, dict[str, int]] = {}
        self._pseudonyms: dict[str, dict[str, int]] = {}
        self._binary: list[str] = []
        self._failed: list[dict[str, str]] = []
        self._transcoded: dict[str, str] = {}
        self._fallbacks: dict[str, str] = {}

    # -- scrubbing -----------------------------------------------------------------
    def text_stream(self, artifact: str) -> TextScrubber:
        """A scrubber for one log or command output, fed in chunks."""
        return TextScrubber(self, artifact)

    def scrub_bytes(self, artifact: str, data: bytes) -> bytes:
        """Scrub a whole (small) text artifact at once; records its hits."""
        scrubber = self.text_stream(artifact)
        return scrubber.feed(data) + scrubber.close()

    def structured(self, artifact: str, data: bytes, fmt: str) -> bytes:
        """Scrub a small config file knowing its layout.

        ``fmt`` "json" (jcagent.conf, agentBootstrap.json, adint.config.json ...):
        the value of every secret key (and everything under it) is replaced, the
        key and the layout stay.  "ini" / "kv" / "conf" / "env": ``key = value``
        lines, the whole rest of the line is the value.  Then the free-text rules
        run over the result (passwords in URLs, JWTs in any value).  A file that
        does not parse falls back to the text scrubber alone, and the report says
        so; this never raises on bad input (a failure of the scrubber itself
        raises, and the caller drops the file).
        """
        encoding = utf16_encoding(data[:8192])
        if encoding:
            body = data[2:] if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else data
            data = body.decode(encoding, "replace").encode("utf-8")
        hits: dict[str, int] = {}
        kind = fmt.lower()
        try:
            if kind == "json":
                data = self._structured_json(data, hits)
            elif kind in ("ini", "kv", "conf", "env"):
                data = self._structured_kv(data, hits)
            else:
                raise _StructureError(f"unknown structured format {fmt!r}")
        except _StructureError as exc:
            hits.clear()
            with self._lock:
                self._fallbacks[artifact] = f"scrubbed as plain text: {exc}"
        scrubber = TextScrubber(self, artifact, sniff=False)
        data = scrubber.feed(data) + scrubber.finish()
        for rule, count in hits.items():
            scrubber.hits[rule] = scrubber.hits.get(rule, 0) + count
        scrubber.encoding = encoding
        self._record(scrubber)
        return data

    def _structured_json(self, data: bytes, hits: dict[str, int]) -> bytes:
        bom = b""
        if data.startswith(BOM_UTF8):
            bom, data = BOM_UTF8, data[3:]
        try:
            json.loads(data)
        except ValueError as exc:
            raise _StructureError(f"not valid JSON: {exc}") from None
        spans = _json_secret_spans(data, self._matcher, hits)
        return bom + assemble(data, spans)

    def _structured_kv(self, data: bytes, hits: dict[str, int]) -> bytes:
        spans: list[Span] = []
        for m in _INI_LINE.finditer(data):
            cls = self._matcher.classify_key(m.group("key").decode("latin-1").strip().strip("'\""))
            if cls is None:
                continue
            vs, ve = m.span("val")
            value = data[vs:ve]
            if len(value) >= 2 and value[:1] in b"\"'" and value[-1:] == value[:1]:
                vs, ve, value = vs + 1, ve - 1, value[1:-1]
            if self._matcher.is_placeholder(value):
                continue
            spans.append((vs, ve, self._matcher.replacement(cls.rule_id, value), cls.rule_id))
            hits[cls.rule_id] = hits.get(cls.rule_id, 0) + 1
        return assemble(data, spans)

    # -- recording -----------------------------------------------------------------
    def skipped_binary(self, artifact: str) -> None:
        """Record a file left out of the bundle because it looks binary."""
        with self._lock:
            if artifact not in self._binary:
                self._binary.append(artifact)

    def failed(self, artifact: str, why: str) -> None:
        """Record a fail-closed drop: the artifact is not in the bundle, and any hits
        recorded for it are withdrawn."""
        with self._lock:
            self._artifacts.pop(artifact, None)
            self._pseudonyms.pop(artifact, None)
            self._transcoded.pop(artifact, None)
            self._failed.append({"artifact": artifact, "reason": why})

    def _record(self, scrubber: TextScrubber) -> None:
        with self._lock:
            mine = self._artifacts.setdefault(scrubber.artifact, {})
            for rule, count in scrubber.hits.items():
                mine[rule] = mine.get(rule, 0) + count
            if scrubber.pseudonyms:
                pseudo = self._pseudonyms.setdefault(scrubber.artifact, {})
                for kind, count in scrubber.pseudonyms.items():
                    pseudo[kind] = pseudo.get(kind, 0) + count
            if scrubber.encoding:
                self._transcoded[scrubber.artifact] = scrubber.encoding

    def artifact_hits(self, artifact: str) -> dict[str, int]:
        """Rule id -> count recorded for one artifact (empty when none or dropped)."""
        with self._lock:
            return dict(self._artifacts.get(artifact, {}))

    def report(self) -> dict[str, Any]:
        """The content of ``redaction.json``.

        ``ruleset_version`` and ``rules`` (id, description, version); ``artifacts``:
        per artifact ``{"hits": {rule: count}}``, plus ``"pseudonyms": {kind: count}``
        with ``--obfuscate`` and ``"transcoded_from": "utf-16-le"`` for UTF-16 input;
        ``totals`` per rule and ``total_redactions``; ``binary_skipped`` files;
        ``failed`` files (dropped, fail closed) with the reason;
        ``structured_fallback`` (config files scrubbed as plain text, and why);
        ``pseudonymization``: on/off and counts per kind - never the map.
        Saves the pseudonym map file when one is configured.
        """
        with self._lock:
            artifacts: dict[str, dict[str, Any]] = {}
            totals: dict[str, int] = {}
            for name in sorted(self._artifacts):
                hits = dict(sorted(self._artifacts[name].items()))
                entry: dict[str, Any] = {"hits": hits}
                if name in self._pseudonyms:
                    entry["pseudonyms"] = dict(sorted(self._pseudonyms[name].items()))
                if name in self._transcoded:
                    entry["transcoded_from"] = self._transcoded[name]
                artifacts[name] = entry
                for rule, count in hits.items():
                    totals[rule] = totals.get(rule, 0) + count
            pseudo_totals: dict[str, int] = {}
            for h in self._pseudonyms.values():
                for kind, count in h.items():
                    pseudo_totals[kind] = pseudo_totals.get(kind, 0) + count
            rules = self.rules.describe()
            own = {r["id"] for r in rules}
            for rule_id in sorted(set(totals) - own):
                entry = self._matcher.describe_hit(rule_id)
                if entry is not None:
                    rules.append(entry)
            report: dict[str, Any] = {
                "ruleset_version": self.rules.version,
                "rules": rules,
                "keywords": len(self._matcher.keywords),
                "vendor_rules": (self.vendor_rules.summary() if self.vendor_rules is not None
                                 else {"active": 0}),
                "artifacts": artifacts,
                "totals": dict(sorted(totals.items())),
                "total_redactions": sum(totals.values()),
                "binary_skipped": sorted(self._binary),
                "failed": list(self._failed),
                "structured_fallback": dict(sorted(self._fallbacks.items())),
                "pseudonymization": {"enabled": self.pseudonymizer is not None},
            }
        if self.pseudonymizer is not None:
            report["pseudonymization"].update({
                "counts": dict(sorted(pseudo_totals.items())),
                "map_kept_locally": self.pseudonymizer.map_path is not None,
            })
            self.pseudonymizer.save()
        return report


# ----------------------------------------------------------------------------- structure

class _StructureError(ValueError):
    pass


_INI_LINE = re.compile(
    rb"^(?P<lead>[ \t]*(?:export[ \t]+)?)(?P<key>[^\s=:#;\[][^=:\r\n]*?)(?P<sep>[ \t]*[=:][ \t]*)"
    rb"(?P<val>[^\r\n]*?)[ \t]*\r?$", re.M)
_JSON_TOKEN = re.compile(
    rb'[ \t\r\n]*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<punct>[{}\[\]:,])|(?P<scalar>[^ \t\r\n{}\[\]:,"]+))',
    re.S)


def _json_secret_spans(data: bytes, matcher: Matcher, hits: dict[str, int]) -> list[Span]:
    """Spans replacing the value of every secret key of a (valid) JSON document.

    A small lexer instead of ``json.loads`` + ``dumps``, so the file keeps its exact
    layout and key order and only the secret values change.  A container under a
    secret key has all its scalar values replaced.
    """
    spans: list[Span] = []
    # Frames: [is_object, inherited KeyClass or None, expecting_key, KeyClass of current key]
    stack: list[list[Any]] = []
    pos, n = 0, len(data)

    def value_class() -> Optional[KeyClass]:
        if not stack:
            return None
        frame = stack[-1]
        return frame[1] or (frame[3] if frame[0] else None)

    while pos < n:
        m = _JSON_TOKEN.match(data, pos)
        if m is None:
            if data[pos:].strip():
                raise _StructureError(f"unexpected byte at offset {pos}")
            break
        pos = m.end()
        kind = m.lastgroup
        tok = m.group(kind)
        if kind == "punct":
            if tok in b"{[":
                stack.append([tok == b"{", value_class(), tok == b"{", None])
            elif tok in b"}]":
                if not stack:
                    raise _StructureError("unbalanced brackets")
                stack.pop()
            elif tok == b"," and stack and stack[-1][0]:
                stack[-1][2], stack[-1][3] = True, None
            continue
        if kind == "str" and stack and stack[-1][0] and stack[-1][2]:
            key = json.loads(tok)
            stack[-1][2], stack[-1][3] = False, matcher.classify_key(key)
            continue
        cls = value_class()
        if cls is None:
            continue
        raw = tok[1:-1] if kind == "str" else tok
        if matcher.is_placeholder(raw):
            continue
        if kind == "str":
            try:
                secret = json.loads(tok).encode("utf-8", "surrogatepass")
            except ValueError:
                secret = raw
        else:
            secret = raw
        s, e = m.span(kind)
        spans.append((s, e, b'"' + matcher.replacement(cls.rule_id, secret) + b'"', cls.rule_id))
        hits[cls.rule_id] = hits.get(cls.rule_id, 0) + 1
    return spans
