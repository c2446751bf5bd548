"""Error counts per time bucket and per error key: the report's timeline, kept small.

The HTML report draws errors per hour (per day over long windows) for the top
error keys.  Which keys end up on top is only known at the end of the logs, so
:class:`Timeline` counts every key it is given while the logs stream by, within a
fixed budget:

* every key shares one bucket width, taken from the ladder 1, 3, 6, 12 hours,
  1 day, then doubling (2, 4, 8... days); each width divides the next, and days
  start at local midnight, so merging buckets keeps the counts exact;
* the whole window (all keys together, and the times :meth:`Timeline.cover` is
  given: the log's first and last lines) never spans more than ``max_buckets``
  buckets: when it would, every key's buckets are merged into the next width;
* a key's counts are one ``array('I')`` holding at most ``max_buckets`` numbers
  and the index of its first bucket: constant memory per key, whatever the size
  of the logs.  Lines without a time are not placed.

The result is exact at its width: the width is the smallest rung of the ladder on
which everything seen fits, and each bucket holds exactly the lines whose time
falls in it (``test_timeline`` checks both against a plain reference).
"""
from __future__ import annotations

from array import array
from datetime import datetime, timedelta
from typing import Iterable, Optional

MAX_BUCKETS = 96                       # 4 days hourly, 3 months daily
_EPOCH = datetime(1970, 1, 1)           # naive: log times are naive local times
_EPOCH_ORDINAL = _EPOCH.toordinal()


def next_width(hours: int) -> int:
    """The rung of the ladder after ``hours`` (1, 3, 6, 12, 24, 48, 96...)."""
    return {1: 3, 3: 6, 6: 12, 12: 24}.get(hours, hours * 2)


def _zeros(n: int) -> array:
    return array("I", [0]) * n


def hour_index(when: datetime) -> int:
    """Whole hours from 1970-01-01 00:00 (wall clock; negative before it).  Ordinal
    arithmetic: a tenth of the cost of datetime subtraction, on every error line."""
    return (when.toordinal() - _EPOCH_ORDINAL) * 24 + when.hour


class Timeline:
    """Exact, bounded per-key counts of timed events; see the module docstring."""

    def __init__(self, max_buckets: int = MAX_BUCKETS):
        if max_buckets < 2:
            raise ValueError("max_buckets must be at least 2")
        self.max_buckets = max_buckets
        self.hours = 1
        self.lo: Optional[int] = None       # first and last bucket seen (all keys), at self.hours
        self.hi: Optional[int] = None
        self._series: dict[str, list] = {}   # key -> [first bucket index, array('I') of counts]

    def add(self, key: str, when: Optional[datetime]) -> None:
        """Count one event of ``key`` at ``when`` (None: not placed)."""
        if when is None:
            return
        self.add_hour(key, hour_index(when))

    def add_hour(self, key: str, hour: int, count: int = 1) -> None:
        """Count ``count`` events of ``key`` in the hour ``hour`` (see :func:`hour_index`).
        The log statistics count a whole block's lines per key and hour first and call
        this once per pair: counts add up alike in any order, so the result is the same
        as one :meth:`add` per line."""
        self._count(key, self.cover_hour(hour), count)

    def add_hours(self, counts: Iterable[tuple[str, int, int]]) -> None:
        """:meth:`add_hour` for each ``(key, hour, count)``: the window first takes in every
        hour given (the width it ends at depends only on which hours it holds, not on their
        order), then every count goes into its bucket at that width.  The log statistics
        give a block's (key, hour) counts at once; one call each cost 1.5 us per pair."""
        counts = list(counts)
        for hour in {hour for _, hour, _ in counts}:
            self.cover_hour(hour)
        width, add = self.hours, self._count
        for key, hour, count in counts:
            add(key, hour // width, count)

    def _count(self, key: str, idx: int, count: int) -> None:
        """``count`` more events of ``key`` in bucket ``idx`` (inside the window)."""
        entry = self._series.get(key)
        if entry is None:
            self._series[key] = [idx, array("I", [count])]
            return
        base, counts = entry
        if idx < base:
            entry[1] = counts = _zeros(base - idx) + counts
            entry[0] = base = idx
        elif idx - base >= len(counts):
            counts.extend(_zeros(idx - base - len(counts) + 1))
        counts[idx - base] += count

    def cover(self, when: datetime) -> int:
        """Make the window include ``when`` (a log line that is no error: the chart then
        spans the whole log, quiet hours included); its bucket index at the new width."""
        return self.cover_hour(hour_index(when))

    def cover_hour(self, hour: int) -> int:
        """:meth:`cover` for an hour index."""
        idx = hour // self.hours
        if self.lo is not None and self.lo <= idx <= self.hi:
            return idx                                   # the usual case: inside the window
        if self.lo is None:
            self.lo = self.hi = idx
        elif idx < self.lo or idx > self.hi:
            self.lo, self.hi = min(self.lo, idx), max(self.hi, idx)
            if self.hi - self.lo >= self.max_buckets:
                self._coarsen()
                idx = hour // self.hours
        return idx

    def drop(self, key: str) -> None:
        """Forget a key (its error group was evicted: its counts would no longer match)."""
        self._series.pop(key, None)

    def _coarsen(self) -> None:
        """Widen the buckets until the window fits, merging every key's counts exactly."""
        old = self.hours
        while True:
            self.hours = next_width(self.hours)
            if (self.hi * old) // self.hours - (self.lo * old) // self.hours < self.max_buckets:
                break
        self.lo, self.hi = (self.lo * old) // self.hours, (self.hi * old) // self.hours
        for entry in self._series.values():
            base, counts = entry
            new_base = (base * old) // self.hours
            merged = _zeros((base + len(counts) - 1) * old // self.hours - new_base + 1)
            for offset, count in enumerate(counts):
                if count:
                    merged[((base + offset) * old) // self.hours - new_base] += count
            entry[0], entry[1] = new_base, merged

    def bucket_start(self, idx: int) -> str:
        return (_EPOCH + timedelta(hours=idx * self.hours)).isoformat(timespec="minutes")

    def to_dict(self, keys: Iterable[str]) -> dict:
        """The window and, for each of ``keys`` seen with a time, ``{bucket start: count}``
        (non-zero buckets only; bucket starts are ISO local times, like the log's)."""
        out: dict = {"bucket_hours": self.hours, "max_buckets": self.max_buckets,
                     "start": None, "end": None, "series": {}}
        if self.lo is None:
            return out
        out["start"] = self.bucket_start(self.lo)
        out["end"] = self.bucket_start(self.hi + 1)
        for key in keys:
            entry = self._series.get(key)
            if entry is None:
                continue
            base, counts = entry
            out["series"][key] = {self.bucket_start(base + i): c for i, c in enumerate(counts) if c}
        return out
