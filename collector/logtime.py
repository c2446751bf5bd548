"""Timestamps at the start of log lines, and the ``--since`` filter built on them.

No public sample of jcagent.log is known, so recognition is deliberately broad:
``YYYY-MM-DD HH:MM:SS`` (also ``T``, ``/``, fractions, zones), JumpCloud's
``YY-MM-DD HH:MM:SS``, logrus ``time="..."``, bracketed forms and syslog
``Mon DD HH:MM:SS``.  A line without a timestamp belongs to the record above it;
lines before the first timestamp are kept, since their age cannot be known, so a
file with no parseable timestamp at all is kept whole.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Optional

_ISO = re.compile(
    rb'^(?:\[|time=")?\s{0,2}(\d{4}|\d{2})[-/](\d{2})[-/](\d{2})[T ](\d{2}):(\d{2}):(\d{2})'
    rb'(?:[.,]\d+)?\s?(Z|[+-]\d{2}:?\d{2})?')
_SYSLOG = re.compile(
    rb"^(?:\[)?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})")
_MONTHS = {m: i + 1 for i, m in enumerate(
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"])}
_DURATION = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WHEN_EXAMPLES = "use e.g. 2026-11-01, 2026-11-01T08:00, 2h, 2h30m, 3d or 1d12h"


def duration_seconds(text: str) -> Optional[float]:
    """``2h``, ``2h30m``, ``1d12h``, ``1w2d`` in seconds; None when ``text`` is not a duration.

    The one duration grammar of the command line and the config files."""
    if not isinstance(text, str) or len(text) > 64 or not _DURATION.match(text):
        return None
    return sum(float(n) * _SECONDS[unit.lower()] for n, unit in _DURATION_PART.findall(text))


def parse_when(text: str, now: Optional[datetime] = None) -> datetime:
    """WHEN of the command line: an ISO date/time or a duration back from now (``2h``, ``2h30m``).

    Returns a naive local datetime (log timestamps without a zone are local time).
    """
    now = now or datetime.now()
    seconds = duration_seconds(text)
    if seconds is not None:
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{text!r} reaches back before the year 1") from None
    stripped = text.strip()
    if stripped[:1] in "-+" and duration_seconds(stripped[1:]) is not None:
        raise ValueError(f"{text!r}: a duration already counts back from now; write {stripped[1:]}, "
                         f"not {stripped}")
    try:
        value = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date/time or duration: {_WHEN_EXAMPLES}") from None
    return _local_naive(value)


def _local_naive(value: datetime) -> datetime:
    if value.tzinfo is not None:
        return value.astimezone().replace(tzinfo=None)
    return value


def line_timestamp(line: bytes, year_hint: int) -> Optional[datetime]:
    """The timestamp a log line starts with, as naive local time, or None."""
    if not line:
        return None
    m = _ISO.match(line)
    if m:
        year, month, day, hh, mm, ss, zone = m.groups()
        y = int(year)
        if y < 100:
            y += 2000
        try:
            value = datetime(y, int(month), int(day), int(hh), int(mm), int(ss))
            if zone:
                return _local_naive(value.replace(tzinfo=_zone(zone)))   # "+9999" is no zone: no stamp
        except (ValueError, OverflowError):
            return None
        return value
    m = _SYSLOG.match(line)
    if m:
        mon, day, hh, mm, ss = m.groups()
        try:
            return datetime(year_hint, _MONTHS[mon], int(day), int(hh), int(mm), int(ss))
        except ValueError:
            return None
    return None


#: :func:`stamp_layout` of a line whose timestamp ``line_timestamp`` must read itself.
READ_EACH = "read each"


def stamp_layout(shape: bytes):
    """Where a line's timestamp is, judged on its *digit shape* (every ASCII digit made
    "0": both patterns above see only digit-or-not, so a line and its shape match alike).

    None: the line carries no timestamp.  ``(offset, template)``: a stamp
    ``YYYY-MM-DD HH:MM:SS`` (either separators) at ``offset`` with no zone after it,
    ``template`` its 19 bytes of shape; lines of one template order in time as their
    19 stamp bytes order as text, so the log statistics compare and count them as
    bytes and build datetimes only for the few they keep.  Whether the digits make a
    real date is for the caller to check.  :data:`READ_EACH`: any other stamp (a zone,
    a two-digit year, syslog's month names).
    """
    m = _ISO.match(shape)
    if m:
        if m.group(7) is None and len(m.group(1)) == 4:
            at = m.start(1)
            return at, shape[at:at + 19]
        return READ_EACH
    return READ_EACH if _SYSLOG.match(shape) else None


def _zone(text: bytes) -> timezone:
    if text == b"Z":
        return timezone.utc
    sign = -1 if text[:1] == b"-" else 1
    digits = text[1:].replace(b":", b"")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


class SinceFilter:
    """Keeps the records of a log whose timestamp is at or after ``since``, streaming.

    Feed it raw chunks; it holds back only an incomplete last line.  Continuation
    lines follow the decision made for the timestamped line above them.
    """

    def __init__(self, since: datetime, max_line: int = 1024 * 1024):
        self.since = since
        self.year_hint = since.year
        self.max_line = max_line
        self.keeping = True            # lines before the first timestamp are kept
        self.saw_timestamp = False
        self.dropped_bytes = 0
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        data = self._pending + data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) < self.max_line:
            self._pending = data
            return b""
        if cut == 0:
            cut = len(data)               # an overlong line: decide on its start
        self._pending = data[cut:]
        return self._filter(data[:cut])

    def close(self) -> bytes:
        rest, self._pending = self._pending, b""
        return self._filter(rest) if rest else b""

    def _filter(self, block: bytes) -> bytes:
        out = []
        for line in block.splitlines(keepends=True):
            ts = line_timestamp(line, self.year_hint)
            if ts is not None:
                self.saw_timestamp = True
                self.keeping = ts >= self.since
            if self.keeping:
                out.append(line)
            else:
                self.dropped_bytes += len(line)
        return b"".join(out)
