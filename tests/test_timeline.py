"""collector.timeline against a plain reference: exact counts, the smallest width that fits,
never more than max_buckets buckets, whatever the order of the events."""
from collections import Counter
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from collector.timeline import Timeline, hour_index, next_width

BASE = datetime(2026, 11, 20, 0, 0)


def reference(events, dropped, max_buckets):
    """The smallest ladder width on which every event's bucket fits in max_buckets, then
    a Counter per key of the events' bucket starts at that width (key None: only covered)."""
    hours = [hour_index(w) for _, w in events]
    width = 1
    while hours and max(hours) // width - min(hours) // width >= max_buckets:
        width = next_width(width)
    series = {}
    for key, when in events:
        if key in dropped or key is None:
            continue
        start = (datetime(1970, 1, 1) + timedelta(hours=hour_index(when) // width * width))
        series.setdefault(key, Counter())[start.isoformat(timespec="minutes")] += 1
    return width, {k: dict(c) for k, c in series.items()}


events_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "<script>", None]),
              st.integers(min_value=-20_000, max_value=20_000).map(lambda m: BASE + timedelta(minutes=m * 7))),
    max_size=300)


@settings(max_examples=300, deadline=None)
@given(events=events_strategy, max_buckets=st.integers(min_value=2, max_value=100),
       drop=st.sets(st.sampled_from(["a", "b", "c", "<script>"]), max_size=2))
def test_timeline_matches_the_reference(events, max_buckets, drop):
    tl = Timeline(max_buckets)
    for key, when in events:
        if key is None:
            tl.cover(when)
        else:
            tl.add(key, when)
    for key in drop:
        tl.drop(key)
    width, expected = reference(events, drop, max_buckets)
    got = tl.to_dict(["a", "b", "c", "<script>"])
    assert got["bucket_hours"] == width
    assert got["series"] == expected
    if events:
        start, end = datetime.fromisoformat(got["start"]), datetime.fromisoformat(got["end"])
        assert (end - start) <= timedelta(hours=width * max_buckets)
        assert all(start <= datetime.fromisoformat(b) < end for s in got["series"].values() for b in s)
    for base, counts in tl._series.values():       # the memory bound itself
        assert len(counts) <= max_buckets


def test_ladder_days_start_at_midnight_and_untimed_events_are_not_placed():
    tl = Timeline(3)
    tl.add("k", datetime(2026, 11, 20, 23, 59))
    tl.add("k", datetime(2026, 11, 22, 0, 1))
    tl.add("k", None)
    got = tl.to_dict(["k", "absent"])
    assert got["bucket_hours"] == 24
    assert got["series"] == {"k": {"2026-11-20T00:00": 1, "2026-11-22T00:00": 1}}
    assert Timeline().to_dict(["k"]) == {"bucket_hours": 1, "max_buckets": 96, "start": None,
                                         "end": None, "series": {}}


def test_a_rejected_budget():
    with pytest.raises(ValueError):
        Timeline(1)


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, max_buckets=st.integers(min_value=2, max_value=100))
def test_counts_added_per_hour_equal_one_add_per_event(events, max_buckets):
    """add_hour(key, hour, n) (the log statistics count a block per key and hour first) gives
    what n calls of add() give, in whatever order the pairs come."""
    one, grouped = Timeline(max_buckets), Timeline(max_buckets)
    pairs = Counter()
    for key, when in events:
        if key is None:
            one.cover(when)
            grouped.cover_hour(hour_index(when))
        else:
            one.add(key, when)
            pairs[(key, hour_index(when))] += 1
    for (key, hour), n in sorted(pairs.items(), key=lambda kv: -kv[0][1]):     # newest first
        grouped.add_hour(key, hour, n)
    keys = ["a", "b", "c", "<script>"]
    assert grouped.to_dict(keys) == one.to_dict(keys)


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, max_buckets=st.integers(min_value=2, max_value=100),
       cut=st.integers(min_value=0, max_value=40), shuffle=st.randoms())
def test_counts_added_in_batches_equal_one_add_per_event(events, max_buckets, cut, shuffle):
    """add_hours (a block's (key, hour, count) at once: the window first, then every count
    at the width it ends at) gives what one add() per event gives, batches in any order."""
    one, batched = Timeline(max_buckets), Timeline(max_buckets)
    batches: list[Counter] = [Counter(), Counter()]
    for i, (key, when) in enumerate(events):
        if key is None:
            one.cover(when)
            batched.cover_hour(hour_index(when))
        else:
            one.add(key, when)
            batches[i >= cut][(key, hour_index(when))] += 1
    for batch in batches:
        items = [(key, hour, n) for (key, hour), n in batch.items()]
        shuffle.shuffle(items)
        batched.add_hours(items)
    keys = ["a", "b", "c", "<script>"]
    assert batched.to_dict(keys) == one.to_dict(keys)
