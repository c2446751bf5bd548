"""Health findings: what is wrong with this machine's JumpCloud agent, and what to do.

Each :class:`Finding` carries a severity, the evidence seen and a concrete
remediation, so an admin can act before opening a ticket and an engineer reads
the cause first.  Checks: agent installed, service running and enabled, process
alive; agent log silent for over 24 h; the most frequent jcagent.log errors;
clock skew against an HTTPS Date header (only when asked); the agent's client
certificate expiry (read in memory, never copied, never its key); free space on
the system and temp volumes (live only).  A check whose facts failed (``None``)
is skipped, never guessed.

Error lines, the rule :class:`LogStats` applies.  The one public jcagent.log
sample reads ``2019/12/10 09:52:45 [932] [ERROR] failed to poll server: ...``.
After the leading timestamp is stripped, a line is an error when its *level*
says so: logrus ``level=error`` at its start or JSON ``"level":"error"``, or
else the first level word among its first four tokens (brackets, colons, pipes
ignored) is ERROR, ERR, FATAL, CRITICAL, CRIT, PANIC, ALERT, EMERG or SEVERE.
A line whose first level word is INFO, DEBUG, WARN... is not ("[INFO] no error
found"), nor is a line with no level word.  A line without a timestamp belongs
to the record above it and takes its time.
"""
from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections import Counter
from itertools import compress, islice, repeat
from operator import eq, is_, is_not, itemgetter, le, not_
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Optional

from collector.literals import LiteralFinder
from collector.logtime import READ_EACH, line_timestamp, stamp_layout
from collector.timeline import Timeline, hour_index
from platforms import linux as _linux, macos as _macos, windows as _windows

try:                  # the error table in C (collector/_logscan.c); the same table in Python without it
    from collector import _logscan
except ImportError:   # pragma: no cover - depends on the installation
    _logscan = None
#: False: build the error table in Python even where ``collector._logscan`` is installed
#: (``JCDIAG_LOGSCAN=python``; the tests compare both ways).
_ACCELERATED = os.environ.get("JCDIAG_LOGSCAN", "").strip().lower() != "python"

MAX_LINE = 8 * 1024           # bytes of one line looked at; the rest of a longer line is dropped
MAX_KEY, MAX_EXAMPLE = 300, 500
MAX_GROUPS = 5000             # distinct normalized error messages held at once
MAX_SHAPES = 4096             # memoized line classifications (see LogStats._error_key)
MEMO_BYTES = 4 << 20          # bytes of shapes one such memo holds (see _Memo)
_UNSEEN = object()
#: A long hex word with the byte before it (see _hex_shape): the byte is matched, not looked
#: behind at, so ``re`` skips ahead on it (a leading look-behind made this 3x slower).
_HEX_WORD = re.compile(rb"[^0-9A-Za-z_\x80-\xff.:](?=[0-9a-fA-F]{8})(?:[a-fA-F]+[0-9]|[0-9]+[a-fA-F])[0-9a-fA-F]*"
                       rb"(?![0-9A-Za-z_\x80-\xff])")
SILENT_AFTER = RECENT = timedelta(hours=24)
SKEW_WARNING, SKEW_ERROR = 60, 300           # seconds
CERT_WARNING_DAYS = 30
CERT_MAX_BYTES = CONF_MAX_BYTES = 1024 * 1024
MIN_FREE_BYTES = 1 << 30
ERROR_LEVELS = {"ERROR", "ERR", "FATAL", "CRITICAL", "CRIT", "PANIC", "ALERT", "EMERG", "SEVERE"}
OTHER_LEVELS = {"INFO", "DEBUG", "TRACE", "WARN", "WARNING", "NOTICE"}
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

AGENT_CONF = {"linux": _linux.AGENT_CONF, "macos": _macos.AGENT_CONF, "windows": _windows.AGENT_CONF}
AGENT_DIR = {"linux": _linux.AGENT_DIR, "macos": _macos.AGENT_DIR, "windows": _windows.CONTRIB}
START = {   # start now and at every boot, per OS
    "linux": "sudo systemctl enable --now jcagent",
    "macos": "sudo launchctl enable system/com.jumpcloud.darwin-agent; sudo launchctl bootstrap system "
             "/Library/LaunchDaemons/com.jumpcloud.darwin-agent.plist; "
             "sudo launchctl kickstart -k system/com.jumpcloud.darwin-agent",
    "windows": "PowerShell as Administrator: Set-Service jumpcloud-agent -StartupType Automatic; "
               "Start-Service jumpcloud-agent (cmd: sc config jumpcloud-agent start= auto && "
               "sc start jumpcloud-agent)",
}
RESTART = {
    "linux": "sudo systemctl restart jcagent",
    "macos": "sudo launchctl kickstart -k system/com.jumpcloud.darwin-agent",
    "windows": "PowerShell as Administrator: Restart-Service jumpcloud-agent",
}
REINSTALL = ("Reinstall the agent: in the JumpCloud Admin Portal, DEVICE MANAGEMENT > Devices > (+) Device "
             "gives the installer and command with your Connect Key; check the OS is listed in JumpCloud's "
             'article "Agent Compatibility, System Requirements, and Impacts".')

_STAMP = re.compile(
    r'^\s*(?:\[|time=")?\s*(?:\d{2,4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\s?'
    r'(?:Z|[+-]\d{2}:?\d{2})?|[A-Z][a-z]{2} {1,2}\d{1,2} \d{2}:\d{2}:\d{2})[\]"]?\s*')
_LOGRUS_LEVEL = re.compile(r'level=("?)([A-Za-z]+)\1')
#: The pre-filter for error lines: words of the error levels, found in lower-cased bytes
#: in one pass (collector.literals); lower() keeps every offset.
_ERROR_WORDS = LiteralFinder((b"err", b"emerg", b"fatal", b"crit", b"panic", b"alert", b"severe"),
                             every=False)
_JSON_LEVEL = re.compile(r'"level"\s*:\s*"([A-Za-z]+)"')
_VARIABLE = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in (   # first wins
    ("UUID", r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
    ("S", r'(?:\bmsg=)?"[^"]*"|(?<!\w)\'[^\']*\''),
    ("IP", r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|(?<![\w:.])(?=[0-9a-f:]*::|(?:[0-9a-f]{1,4}:){3})"
           r"(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])"),
    ("DUR", r"\b(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+\b"),
    ("HEX", r"\b(?:0x)?[0-9a-f]*\d[0-9a-f]*\b"),
    ("N", r"\d+(?:\.\d+)?"),
)), re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: Every ASCII digit to "0": a line and its image classify alike (see LogStats._error_key),
#: unless that makes a "0x" prefix; then 1-9 to "1", keeping 0.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_DIGITS_TO_ONE = bytes.maketrans(b"23456789", b"11111111")
_DIGIT_X = re.compile(rb"[1-9][xX]")          # lines the "0" shape would give a 0x prefix
_X_AFTER_DIGIT = bytes.maketrans(b"123456789X", b"\x01" * 9 + b"x")   # [1-9][xX] -> b"\x01x"


@dataclass
class Finding:
    """One health problem.  ``id`` is stable (scripts key on it); ``severity`` is
    ``error`` | ``warning`` | ``info``."""

    id: str
    severity: str
    title: str
    evidence: str
    remediation: str

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- log statistics


def is_error_line(message: str) -> bool:
    """The module's error rule, on a line whose timestamp is already stripped."""
    m = _JSON_LEVEL.search(message[:500]) if message.startswith("{") else _LOGRUS_LEVEL.match(message)
    if m:
        return m.group(m.lastindex).upper() in ERROR_LEVELS
    for token in message.split(None, 4)[:4]:
        word = token.strip("[]():|<>,").upper()
        if word in ERROR_LEVELS or word in OTHER_LEVELS:
            return word in ERROR_LEVELS
    return False


def _placeholder(m: re.Match) -> str:
    kind, text = m.lastgroup, m.group(0)
    if kind == "S":        # logrus's msg="..." is the message itself: keep it, normalized
        return 'msg="' + _VARIABLE.sub(_placeholder, text[5:-1]) + '"' if text[:4] == "msg=" else '"<S>"'
    if kind == "HEX" and len(text.removeprefix("0x").removeprefix("0X")) < 8:
        return _NUMBER.sub("<N>", text)
    return f"<{kind}>"


def normalize(message: str) -> str:
    """The message with its variable parts (UUIDs, quoted values, IPs, durations,
    hex runs of 8 or more holding a digit, numbers) replaced by placeholders, so
    repeats of one error group together.  One left-to-right pass: wider shapes win.

    Word by word, each word's answer memoized, where the message has no quote: no
    other placeholder's text holds whitespace, and every look-around of the pattern
    sees a whitespace character as it sees the start or end of the text, so each word
    comes out as it does inside the whole message (``test_health`` compares this with
    :func:`normalize_whole` on generated messages).  The whole pass cost 26 us per new
    message, the largest part of the log statistics on a troubled agent's log, whose
    new messages differ mostly in a word or two (an address, a count)."""
    message = message[: 4 * MAX_KEY]          # enough for the key; long lines stay cheap
    if '"' in message or "'" in message:
        return normalize_whole(message)
    memo = _WORD_MEMO
    words = []
    for word in message.split():
        done = memo.get(word)
        if done is None:
            done = _VARIABLE.sub(_placeholder, word)
            if len(word) <= _MEMO_WORD:
                if len(memo) >= MAX_SHAPES:
                    memo.clear()
                memo[word] = done
        words.append(done)
    return " ".join(words)[:MAX_KEY]


def normalize_whole(message: str) -> str:
    """:func:`normalize` in one pass over the whole (cut) message: the reference, and the
    way for messages with quotes (a quoted value may hold whitespace)."""
    message = message[: 4 * MAX_KEY]
    return " ".join(_VARIABLE.sub(_placeholder, message).split())[:MAX_KEY]


_WORD_MEMO: dict[str, str] = {}    # a word -> its normalized form (see normalize), MAX_SHAPES at most
_MEMO_WORD = 64                    # longer words are not memoized: the memo stays under 2 MB


def _hex_shape(shapes: bytes) -> bytes:
    """``shapes`` (digit shapes joined by newlines) with each long hex word made ``0aaa...``
    (same length), for the memo: one regex pass for all the lines of a block.

    A hex word here: 8 or more ASCII hex characters with at least one digit and one
    letter, between ASCII non-word characters (or the line's ends; a neighbouring
    non-ASCII byte may be part of a letter, so it disqualifies), and not right after
    "." or ":" (a number "7.0000000a" or an address could run into it), nor where a
    rule reads into it from the left: after "," when it starts with a digit (a stamp's
    fraction ",0123abcd"), after "+" or "-" when it starts with four digits (a stamp's
    zone "+0200abcd"), after "level=" (a logrus level "level=abcdef12").
    Exact: such a word is always replaced whole, by <HEX> or inside a <UUID> or
    <S>, whichever hex letters and digits it holds; no other rule (timestamp,
    level words, durations, addresses, numbers) can start or end inside it, a
    letter keeps it from reading as a number, and the same length keeps every cut
    (``_JSON_LEVEL`` reads 500 characters) and a UUID's group lengths.  ``test_health``
    checks this against the rules on generated lines.  The caller leaves out lines
    longer than the part ``normalize`` reads: a cut there could split such a word.
    """
    return _HEX_WORD.sub(_hex_word, b"\n" + shapes)[1:]


def _hex_word(m: re.Match) -> bytes:
    word = m.group()
    before = word[:1]
    if before in b",+-=" and (before == b"," and word[1:2].isdigit() or before == b"=" and
                               m.string.endswith(b"level", 0, m.start()) or before in b"+-" and word[1:5].isdigit()):
        return word                      # see _hex_shape: a stamp or level rule reads into it
    return before + b"0" + b"a" * (len(word) - 2)


def _hour_of(text: bytes) -> Optional[int]:
    """The hour index of ``YYYY-MM-DD HH`` (any separators), None when it is no real date."""
    try:
        return hour_index(datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13])))
    except ValueError:
        return None


def _stamp_time(text: bytes) -> datetime:
    """``YYYY-MM-DD HH:MM:SS`` (any separators, already checked to be a real date)."""
    return datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                    int(text[17:19]))


def _older(a: Optional[datetime], b: Optional[datetime]) -> Optional[datetime]:
    return min(a, b) if a and b else a or b


def _newer(a: Optional[datetime], b: Optional[datetime]) -> Optional[datetime]:
    return max(a, b) if a and b else a or b


class _Memo(dict):
    """A memo of line shapes, bounded twice: at most ``MAX_SHAPES`` shapes and at most
    ``MEMO_BYTES`` of them; when full it starts over.  Counting entries alone let a log of
    long distinct error lines (8 KiB each, the longest looked at) hold 32 MiB per memo."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        super().__init__()
        self.held = 0

    def remember(self, shape: bytes, value):
        """Keep ``value`` for ``shape`` (not yet in the memo) and return it."""
        if len(self) >= MAX_SHAPES or self.held + len(shape) > MEMO_BYTES:
            self.clear()
            self.held = 0
        self[shape] = value
        self.held += len(shape)
        return value


@dataclass
class _Group:
    count: int
    first: Optional[datetime]
    last: Optional[datetime]
    example: str


class LogStats:
    """Streaming accumulator over the (already redacted) bytes of jcagent.log files.

    Memory is bounded whatever the input: a line keeps at most ``MAX_LINE`` bytes
    and at most ``max_groups`` error groups are held.  When full, groups seen once
    are evicted (or, if few, the least frequent tenth), so the frequent errors keep
    exact counts; ``evicted`` says how many groups went.  Rotations may be fed in
    any order (first/last seen are min/max); ``close()`` ends each file.
    """

    def __init__(self, now: datetime | None = None, top: int = 10, max_groups: int = MAX_GROUPS):
        self.year_hint = (now or datetime.now()).year
        self.top, self.max_groups = top, max_groups
        self.lines = self.error_lines = self.evicted = 0
        self.last_timestamp: Optional[datetime] = None
        self.newest_error: Optional[datetime] = None
        self._groups: dict[str, _Group] = {}
        self._shapes: tuple[_Memo, ...] = (_Memo(), _Memo())   # digit shape -> key, by "stamped"
        self._hex_shapes: tuple[_Memo, ...] = (_Memo(), _Memo())   # hex shape -> key
        self._layouts: dict[bytes, tuple] = {}       # digit shape -> (key, layout), see _block_errors
        self._older_layouts: dict[bytes, tuple] = {}  # the generation before (see _codes)
        self._hex_codes = _Memo()                    # hex shape -> (key, layout), see _codes
        self._hours: dict[bytes, Optional[int]] = {}  # "YYYY-MM-DD HH" -> hour index (None: no date)
        self._partial = bytearray()
        self._record_time: Optional[datetime] = None
        self.timeline = Timeline()          # per-key counts per hour (or wider) for the report

    def feed(self, data: bytes) -> None:
        """Whole blocks of lines at a time: lines are counted by the block's error table
        (or ``bytes.count``), the error pre-filter runs once over the block, and
        timestamps are parsed only for candidate error lines and the block's last lines —
        per-line Python work made this the slowest step of a collect (78% of its time)
        before."""
        if self._partial:
            nl = data.find(b"\n")
            if nl < 0:
                self._keep(data)
                return
            self._keep(data[:nl])
            self._line(bytes(self._partial))
            self._partial.clear()
            data = data[nl + 1:]
        cut = data.rfind(b"\n") + 1
        if cut:
            self._block(data[:cut])
        self._keep(data[cut:])

    def _keep(self, piece: bytes) -> None:
        room = MAX_LINE - len(self._partial)
        if room > 0:
            self._partial += piece[:room]

    def close(self) -> None:
        """End of one file: a last line without a newline counts, and the next
        file's first lines do not inherit this file's record time."""
        if self._partial:
            self._line(bytes(self._partial))
        self._partial.clear()
        self._record_time = None

    def _block(self, block: bytes) -> None:
        """Complete lines (``block`` ends with a newline)."""
        before = self._record_time
        lines = self._block_errors(block, before)
        if lines is None:
            lines = block.count(b"\n")
            self._line_errors(block, before)
        self.lines += lines
        if before is None:                              # a file's first block: where its log starts
            first = line_timestamp(block[:block.find(b"\n")][:MAX_LINE], self.year_hint)
            if first is not None:
                self.timeline.cover(first)
        newest = self._stamp_before(block, len(block))
        if newest is not None:
            self._record_time = newest
            self.last_timestamp = _newer(self.last_timestamp, newest)
            self.timeline.cover(newest)

    def _line_errors(self, block: bytes, before: Optional[datetime]) -> None:
        """The error lines of ``block`` one by one, in order: the simple way, and the
        reference the block-wide way (:meth:`_block_errors`) must agree with."""
        find, rfind = block.find, block.rfind
        done_to = -1
        for at in _ERROR_WORDS.starts(block.lower()):
            if at <= done_to:
                continue                                # this line was looked at already
            start = rfind(b"\n", 0, at) + 1
            done_to = find(b"\n", at)
            raw = block[start:done_to][:MAX_LINE]
            own = line_timestamp(raw, self.year_hint)
            self._error(raw, own or self._stamp_before(block, start) or before, stamped=own is not None)

    def _block_errors(self, block: bytes, before: Optional[datetime]) -> Optional[int]:
        """The error lines of ``block`` at C speed, with the result of :meth:`_line_errors`,
        and the block's number of lines (the table counts them on its way: a ``bytes.count``
        of its own was another pass over every byte); None (nothing changed) where that
        cannot be promised, and the caller goes line by line.

        A troubled agent's log is a third error lines; Python work per error line (a
        timestamp parse, memo look-ups, group and timeline updates: ~13 us) made the
        statistics 70% of a collect.  So the block's error lines become one table
        (:meth:`_python_table`, or the same table from ``collector._logscan`` in C, one
        pass), per key and hour, and only its rows are counted here: datetimes are
        built only for each key's first and last stamp and for each distinct hour.
        Lines the table cannot count (no stamp of their own, a zone, syslog stamps, a
        "7x" that digit-shaping would make a "0x") are its ``slow`` rows, taken one by one.

        Exact because: stamp bytes of one layout order like their times; every counted
        line's date is checked valid (an invalid date makes a line unstamped, which
        changes its key: minutes and seconds are checked by the table, each distinct
        hour here); a group's example is the block's first line of that key; and when
        new groups would not fit the budget (eviction depends on line order) the block
        goes line by line.
        """
        table = None
        if _logscan is not None and _ACCELERATED:
            table = _logscan.scan(block, self._hex_codes, self._hex_misses, MAX_LINE, 4 * MAX_KEY)
        if table is None:
            table = self._python_table(block)
            if table is None:
                return None
        _, hour_texts, rows, pairs, slow, lines = table
        hours = self._hours
        for text in hour_texts:
            if text not in hours:
                if len(hours) >= MAX_SHAPES:
                    hours.clear()
                hours[text] = _hour_of(text)
            if hours[text] is None:
                return None
        others = []                                     # (key, time, index, start, end) of other error lines
        for i, start, end in slow:
            raw = block[start:end]
            own = line_timestamp(raw, self.year_hint)
            key = self._error_key(raw, own is not None)
            if key is not None:
                others.append((key, own or self._stamp_before(block, start) or before, i, start, end))
        # new groups must fit without evicting (eviction depends on the order of lines)
        groups = self._groups
        new = {row[0] for row in rows if row[0] not in groups}
        new.update(other[0] for other in others if other[0] not in groups)
        if new:
            if len(groups) + len(new) > self.max_groups:
                return None
            firsts = {row[0]: row[4:] for row in rows}                 # key -> (index, start, end)
            for key, _, i, start, end in others:
                if firsts.get(key, (i,))[0] >= i:
                    firsts[key] = (i, start, end)
            for key in sorted(new, key=lambda k: firsts[k][0]):
                _, start, end = firsts[key]
                example = block[start:end].decode("utf-8", errors="replace").strip()[:MAX_EXAMPLE]
                groups[key] = _Group(0, None, None, example)
        if rows:
            keys, hour_of = [row[0] for row in rows], [hours[text] for text in hour_texts]
            self.timeline.add_hours([(keys[row], hour_of[hour], count) for row, hour, count in pairs])
            for key, count, earliest, latest, *_ in rows:
                group = groups[key]
                group.count += count
                if group.first is None or earliest < group.first:
                    group.first = earliest
                if group.last is None or latest > group.last:
                    group.last = latest
                self.error_lines += count
            self.newest_error = _newer(self.newest_error, max(row[3] for row in rows))
        for key, when, *_ in others:
            group = groups[key]
            group.count += 1
            group.first, group.last = _older(group.first, when), _newer(group.last, when)
            self.newest_error = _newer(self.newest_error, when)
            self.timeline.add(key, when)
        self.error_lines += len(others)
        return lines

    def _python_table(self, block: bytes) -> Optional[tuple]:
        """The error table of ``block`` (whole lines): ``(candidates, hours, rows, pairs, slow, lines)``,
        or None when a counted line's minutes or seconds are over 59 or a key's first or last
        stamp is no real date.  ``collector._logscan``
        builds the same table in C; this is its pure-Python fallback and its reference.

        Candidate lines hold an error word (:data:`_ERROR_WORDS`); each is cut to
        ``MAX_LINE`` bytes and its trailing CRs, digit-shaped and looked up in the memo
        (misses: :meth:`_codes`).  The lines stamped in the block's *main* layout (the
        first line's stamp layout ``YYYY-MM-DD HH:MM:SS``, or the first such) are the
        counted ones: ``hours`` are their distinct ``YYYY-MM-DD HH`` texts; ``rows`` are
        ``(key, count, earliest, latest, first index, start, end)`` (datetimes) for each
        key among them, in order of first appearance (lines of no key, not error lines,
        only have their hour checked); ``pairs`` are ``(row, hour, count)`` in order of
        first appearance.  ``slow`` are ``(index, start, end)`` of the other lines that
        may be errors: another layout, no stamp, or a [1-9][xX] that the "0" shape would
        read as a 0x prefix.  ``start``/``end`` are the line's bytes in ``block``.
        ``lines`` is the number of lines in the block.

        All the work is on whole lists, through C (``map``, ``join``, ``translate``,
        ``Counter``): about 4 us per candidate line.
        """
        lines = block.count(b"\n")
        ends = list(dict.fromkeys(map(block.find, repeat(b"\n"), _ERROR_WORDS.starts(block.lower()))))
        if not ends:
            return 0, [], [], [], [], lines
        newlines = list(map(block.rfind, repeat(b"\n"), repeat(0), ends))    # before each line (-1: none)
        joined = b"".join(map(block.__getitem__, map(slice, newlines, ends)))   # lines after their newline
        joined = block[:ends[0]] + joined if newlines[0] < 0 else joined[1:]   # the block's first line
        raws = joined.split(b"\n")
        if max(map(len, raws)) > MAX_LINE or b"\r" in joined:
            raws = [raw[:MAX_LINE].rstrip(b"\r") for raw in raws]
            joined = b"\n".join(raws)
        shapes = joined.translate(_DIGITS_TO_ZERO).split(b"\n")
        n = len(raws)
        odd: set[int] = set()
        if joined.translate(_X_AFTER_DIGIT).count(b"\x01x"):   # bytes.count("0x") crawls on shapes
            odd = set(compress(range(n), map(_DIGIT_X.search, raws)))
        codes = list(map(self._layouts.get, shapes))
        if None in codes:
            self._codes(codes, shapes)
        keys = list(map(itemgetter(0), codes))
        layouts = list(map(itemgetter(1), codes))
        main = layouts[0] if layouts[0].__class__ is tuple else next(
            (lay for lay in layouts if lay.__class__ is tuple), None)
        on_main = None                                  # None: every line (the usual block: one layout)
        slow: list[int] = []
        if main is None or odd or layouts.count(main) != n:
            on_main = list(map(eq, layouts, repeat(main))) if main is not None else [False] * n
            for i in odd:
                on_main[i] = False
            slow = [i for i in compress(range(n), map(not_, on_main)) if i in odd or codes[i] != (None, None)]
            # maybe errors: another layout's date may be no date, and "odd" shapes misread
        starts = list(map((1).__add__, newlines))
        slow_rows = [(i, starts[i], starts[i] + len(raws[i])) for i in slow]
        if main is None:
            return n, [], [], [], slow_rows, lines
        at = main[0]
        stamps = list(map(itemgetter(slice(at, at + 19)), raws if on_main is None else compress(raws, on_main)))
        if not stamps:
            return n, [], [], [], slow_rows, lines
        every = b"".join(stamps)
        if max(every[14::19]) > 0x35 or max(every[17::19]) > 0x35:     # minutes or seconds over 59
            return None
        hour_texts = list(map(itemgetter(slice(0, 13)), stamps))
        hour_of = {text: h for h, text in enumerate(dict.fromkeys(hour_texts))}
        index: Iterable[int] = range(n) if on_main is None else compress(range(n), on_main)
        fast_keys = keys if on_main is None else list(compress(keys, on_main))
        if None in fast_keys:
            keep = list(map(is_not, fast_keys, repeat(None)))
            index = compress(index, keep)
            fast_keys, stamps, hour_texts = (list(compress(items, keep)) for items in (fast_keys, stamps, hour_texts))
        if not fast_keys:
            return n, list(hour_of), [], [], slow_rows, lines
        if all(map(le, stamps, islice(stamps, 1, None))):
            lasts, earliest = dict(zip(fast_keys, stamps)), dict(zip(reversed(fast_keys), reversed(stamps)))
        else:
            ordered = sorted(zip(fast_keys, stamps))
            lasts, earliest = dict(ordered), dict(reversed(ordered))
        firsts = dict(zip(reversed(fast_keys), reversed(list(index))))
        row_of = {key: r for r, key in enumerate(dict.fromkeys(fast_keys))}
        pairs = [(row_of[key], hour_of[text], count)
                 for (key, text), count in Counter(zip(fast_keys, hour_texts)).items()]
        counts = Counter()
        for row, _, count in pairs:
            counts[row] += count
        try:
            rows = [(key, counts[r], _stamp_time(earliest[key]), _stamp_time(lasts[key]), firsts[key],
                     starts[firsts[key]], starts[firsts[key]] + len(raws[firsts[key]])) for key, r in row_of.items()]
        except ValueError:                              # no real date: line by line
            return None
        return n, list(hour_of), rows, pairs, slow_rows, lines

    def _codes(self, codes: list, shapes: list[bytes]) -> None:
        """Fill in the ``None`` entries of ``codes``: (key, timestamp layout) of each digit
        shape, memoized.  The key is the one the line has when the layout's stamp is a
        real date (None: no error line).  Fresh ids on every line make most of these
        misses; they go to the generation before, then to a second memo on the hex
        shape (:func:`_hex_shape`, one regex pass for them all): a line repeating a
        message with a fresh id is a new digit shape, not a new hex shape.  Only new hex
        shapes are classified one by one."""
        missed = list(compress(range(len(codes)), map(is_, codes, repeat(None))))
        missed_shapes = list(map(shapes.__getitem__, missed))
        found = list(map(self._older_layouts.get, missed_shapes))
        if None in found:
            todo = list(compress(range(len(found)), map(is_, found, repeat(None))))
            todo_shapes = list(map(missed_shapes.__getitem__, todo))
            if max(map(len, todo_shapes)) <= 4 * MAX_KEY:
                hexed = _hex_shape(b"\n".join(todo_shapes)).split(b"\n")
            else:                                  # see _hex_shape: long lines as they are
                short = [shape for shape in todo_shapes if len(shape) <= 4 * MAX_KEY]
                shaped = iter(_hex_shape(b"\n".join(short)).split(b"\n"))
                hexed = [next(shaped) if len(shape) <= 4 * MAX_KEY else shape for shape in todo_shapes]
            for j, hex_shape, code in zip(todo, hexed, map(self._hex_codes.get, hexed)):
                found[j] = code or self._hex_code(hex_shape)
        for i, code in zip(missed, found):
            codes[i] = code
        fresh = {shape: code for shape, code in zip(missed_shapes, found) if len(shape) <= 4 * MAX_KEY}
        memo = self._layouts
        if len(memo) + len(fresh) > MAX_SHAPES:     # two generations: what recurs survives
            self._older_layouts, self._layouts = memo, dict(islice(fresh.items(), MAX_SHAPES))
        else:
            memo.update(fresh)

    def _hex_code(self, hex_shape: bytes) -> tuple:
        """(key, timestamp layout) of a hex shape (see :meth:`_codes`), classified and memoized."""
        layout = stamp_layout(hex_shape)
        key = None if layout is READ_EACH else self._classify(hex_shape, layout is not None)
        return self._hex_codes.remember(hex_shape, (key, layout))

    def _hex_misses(self, codes: list, hex_shapes: list[bytes]) -> None:
        """Fill in the ``None`` entries of ``codes`` from their hex shapes: ``collector._logscan``
        shapes every line itself and looks up :attr:`_hex_codes` (a line repeating a message
        with a fresh id is a new digit shape, not a new hex shape), so only new messages get here."""
        for i in compress(range(len(codes)), map(is_, codes, repeat(None))):
            codes[i] = self._hex_codes.get(hex_shapes[i]) or self._hex_code(hex_shapes[i])

    def _stamp_before(self, block: bytes, end: int, lines: int = 256) -> Optional[datetime]:
        """The timestamp of the nearest line before ``end`` that has one (a bounded look back)."""
        stop = end - 1 if end and block[end - 1:end] == b"\n" else end
        for _ in range(lines):
            if stop <= 0:
                return None
            start = block.rfind(b"\n", 0, stop) + 1
            stamp = line_timestamp(block[start:stop][:MAX_LINE], self.year_hint)
            if stamp is not None:
                return stamp
            stop = start - 1
        return None

    def _line(self, raw: bytes) -> None:
        """One line assembled across chunks."""
        self.lines += 1
        stamp = line_timestamp(raw, self.year_hint)
        if stamp is not None:
            self._record_time = stamp
            self.last_timestamp = _newer(self.last_timestamp, stamp)
            self.timeline.cover(stamp)
        if _ERROR_WORDS.positions(raw.lower()):
            self._error(raw, self._record_time, stamped=stamp is not None)

    def _error(self, raw: bytes, when: Optional[datetime], stamped: bool) -> None:
        """Count ``raw`` if it is an error line, grouped by its normalized message;
        ``stamped`` says the line starts with a timestamp (already parsed by the caller)."""
        raw = raw.rstrip(b"\r")
        key = self._error_key(raw, stamped)
        if key is None:
            return
        self.error_lines += 1
        self.newest_error = _newer(self.newest_error, when)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= self.max_groups:
                self._evict()
            example = raw.decode("utf-8", errors="replace").strip()[:MAX_EXAMPLE]
            self._groups[key] = _Group(1, when, when, example)
        else:
            group.count += 1
            group.first, group.last = _older(group.first, when), _newer(group.last, when)
        self.timeline.add(key, when)

    def _error_key(self, raw: bytes, stamped: bool) -> Optional[str]:
        """The line's group (its normalized message), or None when it is no error line.

        Memoized on the line's *shape*: its bytes with every ASCII digit made "0".
        Exact, not a heuristic: the timestamp, level and placeholder rules look only
        at digit-or-not (never at which digit, except "0" before "x" in a 0x prefix,
        which the shape keeps apart), every digit of the message ends up inside a
        replaced part, and in UTF-8 an ASCII byte is never part of another
        character, so a line and its shape classify alike (``test_health`` checks
        this on generated lines).  Lines repeating one error differ mostly in
        numbers and ids; decoding and the regex passes (~20 us a line) were most of
        the log statistics' time.
        """
        shape = raw.translate(_DIGITS_TO_ZERO)
        if (b"0x" in shape or b"0X" in shape) and \
                shape.count(b"0x") + shape.count(b"0X") != raw.count(b"0x") + raw.count(b"0X"):
            shape = raw.translate(_DIGITS_TO_ONE)      # "7x" must not read as a 0x prefix
        memo = self._shapes[stamped]
        key = memo.get(shape, _UNSEEN)
        if key is _UNSEEN:
            key = memo.remember(shape, self._classify(_hex_shape(shape) if len(shape) <= 4 * MAX_KEY else shape,
                                                      stamped))
        return key

    def _classify(self, shape: bytes, stamped: bool) -> Optional[str]:
        """The second memo level, on :func:`_hex_shape` (a fresh hex id on every line
        makes every line a new digit shape, not a new hex shape)."""
        memo = self._hex_shapes[stamped]
        key = memo.get(shape, _UNSEEN)
        if key is _UNSEEN:
            text = shape.decode("utf-8", errors="replace")
            message = _STAMP.sub("", text, count=1) if stamped else text.lstrip()
            key = memo.remember(shape, normalize(message) if is_error_line(message) else None)
        return key

    def _evict(self) -> None:
        enough = max(1, self.max_groups // 10)
        victims = [k for k, g in self._groups.items() if g.count == 1]
        if len(victims) < enough:
            victims = sorted(self._groups, key=lambda k: self._groups[k].count)[:enough]
        for key in victims:
            del self._groups[key]
            self.timeline.drop(key)
        self.evicted += len(victims)

    def top_errors(self) -> list[dict]:
        """The ``top`` most frequent error groups, most frequent first (newest first on ties)."""
        ranked = sorted(self._groups.items(), key=lambda kv: (
            -kv[1].count, datetime.min - (kv[1].last or datetime.min), kv[0]))
        return [{"message": key, "count": g.count, "first_seen": _iso(g.first),
                 "last_seen": _iso(g.last), "example": g.example} for key, g in ranked[: self.top]]


    def to_summary(self) -> dict:
        """What summary.json keeps of the logs: totals, the top error groups and their
        timeline (errors per hour, or per wider bucket over long windows)."""
        top = self.top_errors()
        return {"lines": self.lines, "error_lines": self.error_lines, "evicted": self.evicted,
                "last_timestamp": _iso(self.last_timestamp), "top_errors": top,
                "timeline": self.timeline.to_dict(e["message"] for e in top)}


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value else None


# --------------------------------------------------------------------------- agent files


def jcagent_conf(platform) -> dict | None:
    """jcagent.conf as a dict (bounded read), or None when absent or not JSON.
    On Windows the conf the registry names (``ConfigFile``) is tried first."""
    candidates = [AGENT_CONF.get(platform.family, _linux.AGENT_CONF)]
    registry = getattr(platform, "registry", None)
    named = registry.value(_windows.JC_AGENT_KEY, "ConfigFile") if registry is not None else None
    if isinstance(named, str) and re.match(r"^[A-Za-z]:\\", named):
        candidates.insert(0, named)
    for path in candidates:
        text = platform.read_text(path, limit=CONF_MAX_BYTES)
        try:
            conf = json.loads(text.lstrip("\ufeff")) if text else None
        except ValueError:
            continue
        if isinstance(conf, dict):
            return conf
    return None


def agent_file_path(platform, conf: dict | None, key: str, default_name: str) -> str:
    """The system path jcagent.conf gives under ``key`` (``clientCrt``), relative
    names taken from the agent directory, else the agent directory's default file."""
    folder = AGENT_DIR.get(platform.family, _linux.AGENT_DIR)
    sep = "\\" if platform.family == "windows" else "/"
    value = (conf or {}).get(key)
    value = value.strip() if isinstance(value, str) else ""
    absolute = re.match(r"^[A-Za-z]:\\|^\\\\", value) if sep == "\\" else value.startswith("/")
    return value if absolute else f"{folder.rstrip(sep)}{sep}{value or default_name}"


def _read_bounded(platform, system_path: str, limit: int) -> bytes:
    """A regular file's bytes under the root, never through a final symlink.
    Raises OSError (FileNotFoundError when absent) or ValueError (not regular, too big)."""
    resolve = getattr(platform, "inside", None) or platform.path   # Linux follows links inside the root
    fd = os.open(resolve(system_path), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data


def _certificate(data: bytes):
    from cryptography import x509

    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


# --------------------------------------------------------------------------- checks


def _agent_findings(platform, agent) -> list[Finding]:
    family = platform.family if platform.family in START else "linux"
    if agent.installed is False:
        return [Finding("agent-not-installed", "error", "The JumpCloud agent is not installed",
                        "no agent program, configuration or service was found", REINSTALL)]
    boot = {True: "yes", False: "no"}.get(agent.service_enabled, "unknown")
    seen = f"service {agent.service_name or 'of the agent'}: {agent.service_state}, starts at boot: {boot}"
    seen += f" ({'; '.join(agent.notes)})" if agent.notes else ""
    out = []
    if agent.installed and agent.service_state == "absent":
        out.append(Finding("agent-service-missing", "error", "The agent's service is not registered", seen,
                           "The agent's files are present but no service runs them. " + REINSTALL))
    elif agent.service_state == "stopped":
        out.append(Finding("agent-service-stopped", "error", "The JumpCloud agent service is stopped", seen,
                           f"Start it and make it start at boot: {START[family]}"))
    elif agent.service_enabled is False:
        out.append(Finding("agent-service-disabled", "warning", "The agent service does not start at boot",
                           seen, f"Enable it so it survives a restart: {START[family]}"))
    if platform.live and agent.installed and not agent.processes \
            and agent.service_state in ("running", "unknown"):
        out.append(Finding("agent-process-missing", "warning", "No JumpCloud agent process is running",
                           seen + "; no agent process in the process list",
                           f"Restart the agent: {RESTART[family]}. If it exits again, the last lines "
                           "of jcagent.log say why."))
    return out


_PANIC = re.compile(r"(?:^|[\s\]])panic: ")     # how the Go runtime starts a crash report


def _log_findings(stats: LogStats, now: datetime) -> list[Finding]:
    out = []
    if stats.last_timestamp is not None and stats.last_timestamp < now - SILENT_AFTER:
        hours = (now - stats.last_timestamp).total_seconds() / 3600
        out.append(Finding("agent-log-silent", "warning", "The agent has not logged for over 24 hours",
                           f"newest jcagent.log line: {stats.last_timestamp.isoformat()}, {hours:.0f} h "
                           f"before {now.isoformat(timespec='seconds')}",
                           "A healthy agent logs every few minutes: check that its service runs and "
                           "restart it; a full disk or an unwritable log file also stops logging."))
    top = stats.top_errors()
    panics = [e for e in top if _PANIC.search(e["message"])]
    if panics:
        out.append(Finding("agent-panic", "error", "The agent crashed (Go panic) in jcagent.log",
                           "\n".join(f"{e['count']}x {e['message']} (last {e['last_seen'] or 'unknown'})"
                                      for e in panics[:3]),
                           "A panic stops the agent until its service restarts it: update the agent to "
                           "the newest version and, if it happens again, send this bundle to support "
                           "(the lines after the panic in jcagent.log show where it failed)."))
    if top:
        recent = stats.newest_error is not None and stats.newest_error >= now - RECENT
        lines = [f"{e['count']}x {e['message']} (first {e['first_seen'] or 'unknown'}, "
                 f"last {e['last_seen'] or 'unknown'})" for e in top[:5]]
        if stats.evicted:
            lines.append(f"({stats.evicted} rare messages were dropped from the count)")
        out.append(Finding("agent-log-errors", "warning" if recent else "info",
                           f"{stats.error_lines} error lines in jcagent.log"
                           + ("" if recent else ", none in the last 24 hours"), "\n".join(lines),
                           "Start with the most frequent message: TLS or x509 errors point at the clock "
                           "or an inspecting proxy; dial, timeout, EOF or DNS errors at the network (the "
                           "agent needs HTTPS to the endpoints JumpCloud lists in \"Agent Compatibility, "
                           "System Requirements, and Impacts\")."))
    return out


def _default_http_get(url: str) -> dict:
    import requests

    return dict(requests.head(url, timeout=5, verify=True, allow_redirects=False).headers)


def _clock_findings(url: str, http_get: Callable[[str], dict], now: datetime) -> list[Finding]:
    """The server's Date header against ``now``, which must be the real clock here."""
    try:
        headers = {k.lower(): v for k, v in http_get(url).items()}
        from email.utils import parsedate_to_datetime     # online checks only: not at every start
        server = parsedate_to_datetime(headers["date"])
    except Exception as exc:   # network, TLS or header trouble: say so, never guess
        return [Finding("clock-check-failed", "info", "The clock could not be checked",
                        f"{url}: {type(exc).__name__}: {exc}",
                        "Check that this machine reaches the URL over HTTPS, or leave out --online.")]
    server = server if server.tzinfo else server.replace(tzinfo=timezone.utc)
    mine = now.astimezone(timezone.utc)
    skew = (mine - server).total_seconds()
    if abs(skew) <= SKEW_WARNING:
        return []
    return [Finding("clock-skew", "error" if abs(skew) > SKEW_ERROR else "warning",
                    f"The clock is {abs(skew):.0f} s {'ahead' if skew > 0 else 'behind'}",
                    f"local {mine.isoformat(timespec='seconds')}; {url} says {headers['date']}",
                    "The agent's TLS and TOTP codes fail when the clock is off. Turn on network time: "
                    "Linux `sudo timedatectl set-ntp true`; macOS System Settings > General > Date & Time "
                    "> Set time automatically (or `sudo sntp -sS time.apple.com`); Windows `w32tm "
                    "/resync` as Administrator.")]


def _cert_findings(platform, agent, now: datetime) -> list[Finding]:
    conf = jcagent_conf(platform)
    path = agent_file_path(platform, conf, "clientCrt", "client.crt")
    unchecked = "The agent's client certificate could not be checked"
    if path.lower().endswith((".key", ".p12", ".pfx")) or path.lower() == agent_file_path(
            platform, conf, "clientKey", "client.key").lower():
        return [Finding("agent-cert-unchecked", "info", unchecked,
                        f"clientCrt names {path}, a key file: not read", "Check jcagent.conf's clientCrt.")]
    try:
        cert = _certificate(_read_bounded(platform, path, CERT_MAX_BYTES))
    except FileNotFoundError:
        if agent is None or not agent.installed:
            return []
        return [Finding("agent-cert-missing", "warning", "The agent has no client certificate",
                        f"{path} not found", "The agent never registered or lost its identity. " + REINSTALL)]
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return [Finding("agent-cert-unchecked", "info", unchecked, f"{path}: {why}",
                        "Run jcdiag as root / Administrator; a damaged file means reinstalling the agent.")]
    expires = cert.not_valid_after_utc
    days = (expires - now.astimezone(timezone.utc)).total_seconds() / 86400
    evidence = f"{path}: subject {cert.subject.rfc4514_string()}, valid until {expires.isoformat()}"
    restart = RESTART.get(platform.family, RESTART["linux"])
    if days < 0:
        return [Finding("agent-cert-expired", "error", "The agent's client certificate has expired",
                        f"{evidence} ({-days:.0f} days ago)",
                        f"The agent cannot authenticate to JumpCloud. Restart it ({restart}) so it can "
                        "renew; if the date does not move, " + REINSTALL[0].lower() + REINSTALL[1:])]
    if days <= CERT_WARNING_DAYS:
        return [Finding("agent-cert-expiring", "warning",
                        f"The agent's client certificate expires in {days:.0f} days", evidence,
                        f"Keep the agent running and online so it renews the certificate ({restart}); "
                        "if the date does not move within days, send this bundle to JumpCloud support.")]
    return []


def volume_free(path: str) -> tuple[int, int]:
    """(device id, free bytes) of the volume holding ``path``; a seam for tests."""
    import psutil

    return os.stat(path).st_dev, psutil.disk_usage(path).free


def _disk_findings(platform) -> list[Finding]:
    volumes = {"system volume": platform.root.anchor or str(platform.root),
               "temp volume": tempfile.gettempdir()}
    out, seen = [], set()
    for label, path in volumes.items():
        try:
            device, free = volume_free(path)
        except OSError:
            continue
        if device in seen:
            continue
        seen.add(device)
        if free < MIN_FREE_BYTES:
            out.append(Finding("low-disk-space", "error", f"Less than 1 GiB free on the {label}",
                               f"{path}: {free / (1 << 20):.0f} MiB free",
                               "Free space (empty the trash and temp folders, remove old logs and "
                               "installers): the agent cannot update, log or keep its state otherwise."))
    return out


def findings(platform, os_info, patch, agent, log_stats: LogStats | None, now: datetime,
             online_url: str | None = None, http_get=None) -> list[Finding]:
    """Every health finding for this machine, errors first.

    ``os_info``/``patch``/``agent`` may be None when that fact failed: the checks
    needing it are skipped (none needs ``os_info`` or ``patch`` yet).  ``now`` is
    naive local time or aware; log times are naive local.  The clock check runs
    only with ``online_url``, against ``now``: pass the real clock then, not --as-of.
    """
    local_now = now.astimezone().replace(tzinfo=None) if now.tzinfo else now
    out: list[Finding] = []
    if agent is not None:
        out += _agent_findings(platform, agent)
    if log_stats is not None:
        out += _log_findings(log_stats, local_now)
    if online_url:
        out += _clock_findings(online_url, http_get or _default_http_get, now)
    if agent is None or agent.installed is not False:
        out += _cert_findings(platform, agent, now)
    if platform.live:
        out += _disk_findings(platform)
    return sorted(out, key=lambda f: SEVERITY_ORDER.get(f.severity, 3))
