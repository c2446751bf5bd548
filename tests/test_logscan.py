"""collector._logscan (C) against LogStats._python_table, its pure-Python reference.

The C may answer None where it cannot promise the Python table (the caller then builds it
in Python), but a table it returns must equal ``_python_table``'s for the same block and
memo state, and nothing it is given (hostile bytes, a memo of the wrong form, a ``resolve``
that raises, keeps or rewrites its lists) may crash it or corrupt memory.
"""
from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import tracemalloc
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from collector import health
from collector.health import LogStats

# No skip: setup.py builds the extension as optional, so a failed build would only show here.
from collector import _logscan  # noqa: E402
from tests.test_health import NOW, _everything, agent_log  # noqa: E402

_ROOT = Path(__file__).resolve().parent.parent
MAX_HOURS = 64                       # collector/_logscan.c: more distinct hours in a block, the Python way
HEX_LIMIT = 4 * health.MAX_KEY       # lines hex-shaped (see health._hex_shape)
MAX_LINE = health.MAX_LINE
ERROR_WORDS = (b"err", b"emerg", b"fatal", b"crit", b"panic", b"alert", b"severe")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def c_table(stats: LogStats, block):
    return _logscan.scan(block, stats._hex_codes, stats._hex_misses, MAX_LINE, HEX_LIMIT)


def candidate_rows(block: bytes, max_line: int = MAX_LINE) -> list[tuple[bytes, int, int]]:
    """The lines the table looks at, found independently: an error word in any ASCII case,
    each cut to ``max_line`` bytes and its trailing CRs; with their start and end in ``block``."""
    rows, start = [], 0
    for line in block.split(b"\n")[:-1]:
        if any(word in line.lower() for word in ERROR_WORDS):
            raw = line[:max_line].rstrip(b"\r")
            rows.append((raw, start, start + len(raw)))
        start += len(line) + 1
    return rows


def candidates(block: bytes) -> list[bytes]:
    return [raw for raw, _, _ in candidate_rows(block)]


def expected_shape(raw: bytes) -> bytes:
    shape = raw.translate(health._DIGITS_TO_ZERO)
    return health._hex_shape(shape) if len(shape) <= HEX_LIMIT else shape


def _smallest(block: bytes, differs) -> bytes:
    """``block`` with lines dropped while ``differs`` holds: a readable counterexample."""
    lines = block.split(b"\n")[:-1]
    step = max(1, len(lines) // 2)
    while step >= 1:
        i = 0
        while i < len(lines):
            trial = lines[:i] + lines[i + step:]
            if trial and differs(b"\n".join(trial) + b"\n"):
                lines = trial
            else:
                i += step
        step //= 2
    return b"\n".join(lines) + b"\n"


def _diverges(block: bytes) -> bool:
    try:
        c = c_table(LogStats(now=NOW), block)
        return c is not None and c != LogStats(now=NOW)._python_table(block)
    except Exception:               # noqa: BLE001 - any failure counts while shrinking
        return True


def assert_same_table(block: bytes, warm: bool = True):
    """(a): scan on a fresh LogStats against _python_table on another, then again on the
    memo the first scan filled (hits, no resolve), and on a memo _python_table filled.
    Returns the C table (None: the C declined)."""
    expected = LogStats(now=NOW)._python_table(block)
    stats = LogStats(now=NOW)
    got = c_table(stats, block)
    if got is None:
        # the only reasons with a real memo: minutes or seconds over 59 (Python None too),
        # or more distinct hours than the C keeps
        assert expected is None or len(expected[1]) > MAX_HOURS, _smallest(block, lambda b: c_table(
            LogStats(now=NOW), b) is None and LogStats(now=NOW)._python_table(b) is not None)
        return None
    assert got == expected, _smallest(block, _diverges)
    if warm:
        assert c_table(stats, block) == expected                  # every line a memo hit
        mixed = LogStats(now=NOW)
        mixed._python_table(block[: len(block) // 2 + 1] + b"\n")   # Python filled part of the memo
        assert c_table(mixed, block) == expected
        assert mixed._python_table(block) == expected
    return got


# --------------------------------------------------------------------------- generated blocks

_LEVEL_WORDS = ["err", "error", "emerg", "fatal", "crit", "critical", "panic", "alert", "severe"]
_OTHER = ["INFO", "[INFO]", "WARN", "warning", "debug", "TRACE", "level=error", "level=info", "level=Error",
          'level="error"', "level=abcdef12", "level=", '{"level":"error","msg":"x"}', '{"level": "info"}',
          'msg="a b"', "'q'", "10.0.0.1", "192.168.1.20:8443", "fe80::1ff:fe23:4567:890a", "::1", "12ms",
          "1.5s", "3h2m", "250µs", "12.5", "v2.10.3", "a/b.json", "user007", "é", "ß", "Ω", "_", "x", "X",
          "0x", "x7", "7x", "0", "errno", "terror", "Erroneous", "alerts", "critic", "fatalism", "panicked",
          "e", "er", "rr", "ERR", "Emerg", "fAtAl", "CRIT", "panic:", "ALERT", "severe", "SeVeRe", "[ERROR]",
          "<ERR>", "ERROR:", "|FATAL|", "(crit)", "goroutine 7 [running]:", "severity", "Sever", "emer", "fata",
          "cri", "pani", "aler", "eRr", "EMERGENCY", "fatally"]
_LEADS = ["level={h8} ERROR ", "level={h8} [INFO] ", "+{n}{h8} [ERROR] ", ",{n}{h8} [ERROR] ", "-{n}{h8} ERROR ",
          "level=error ", "level=panic ", 'level="fatal" ', '{{"level":"error","id":"{h8}"}} ', "[{h8}] ERROR ",
          ".{h8} ERROR ", ":{h8} ERROR "]
_SEPS = ["", " ", " ", " ", " ", ".", ":", ",", "+", "-", "=", "level=", "/", "_", "é", "\udcff", "\t", "\r",
         '"', "[", "]", "(", ")", "|", ";", "@", "\udcc3", "\x00", "\x01"]
_PREFIXES = ["", "", "", "", "", "0x", "0X", "7x", "9X", "X", "x", "1x", "x7", "-", "+", ",", ".", ":", "="]
_HEX_ALPHABETS = ["0123456789abcdef", "0123456789ABCDEF", "0123456789abcdefABCDEF", "0123456789", "abcdef",
                  "0123456789abcdefg", "19aF"]
_STAMPS = ["{Y}-{m}-{d} {H}:{M}:{S}", "{Y}-{m}-{d} {H}:{M}:{S}.{f}", "{Y}-{m}-{d} {H}:{M}:{S},{f}",
           "{Y}/{m}/{d} {H}:{M}:{S}", "{Y}-{m}-{d}T{H}:{M}:{S}", "{Y}-{m}-{d}T{H}:{M}:{S}Z",
           "{Y}-{m}-{d} {H}:{M}:{S} +0200", "{Y}-{m}-{d} {H}:{M}:{S}+02:00", "{Y}-{m}-{d} {H}:{M}:{S}-0130",
           "[{Y}-{m}-{d} {H}:{M}:{S}]", "[{Y}-{m}-{d}T{H}:{M}:{S}.{f}Z]", 'time="{Y}-{m}-{d}T{H}:{M}:{S}"',
           "  {Y}-{m}-{d} {H}:{M}:{S}", " {Y}/{m}/{d} {H}:{M}:{S}", "   {Y}-{m}-{d} {H}:{M}:{S}",
           "\t{Y}-{m}-{d} {H}:{M}:{S}", "{y}-{m}-{d} {H}:{M}:{S}", "{b} {e} {H}:{M}:{S}",
           "[{b} {e} {H}:{M}:{S}]", "", "", "", "    at frame {n}", "{Y}-{m}-{d}", "{Y}-{m}-{d} {H}:{M}",
           "{Y}{m}{d} {H}{M}{S}", "{Y}-{m}-{d} {H}:{M}:{S}{f}abc", "{Y}-{m}-{d} {H}:{M}:{S}+0200abcd",
           "{Y}-{m}-{d} {H}:{M}:{S},0123abcd", "{Y}-{m}-{d} {H}:{M}:{S}.abcdef12"]
_MAIN = ["{Y}-{m}-{d} {H}:{M}:{S}", "{Y}-{m}-{d} {H}:{M}:{S}.{f}", "{Y}-{m}-{d} {H}:{M}:{S},{f}",
         "{Y}/{m}/{d} {H}:{M}:{S}", "{Y}-{m}-{d}T{H}:{M}:{S}", "[{Y}-{m}-{d} {H}:{M}:{S}]",
         'time="{Y}-{m}-{d}T{H}:{M}:{S}"', "  {Y}-{m}-{d} {H}:{M}:{S}", "\t{Y}/{m}/{d} {H}:{M}:{S}"]   # tuple layouts
_GLITCHES = [("M", "60"), ("M", "99"), ("S", "60"), ("S", "61"), ("H", "24"), ("m", "13"), ("m", "00"),
             ("d", "32"), ("d", "00"), ("Y", "0000")]
_STEPS = [0, 0, 1, 1, 2, 7, 59, 61, 600, -3, -3700, 3600]
_PADS = ["w", " ", "0", "a", "\r", "é", "7", "f0"]
_TARGETS = [1196, 1197, 1198, 1199, 1200, 1201, 1202, 8190, 8191, 8192, 8193, 8194, 9000, 20000]


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _error_word(r: random.Random) -> str:
    word = r.choice(_LEVEL_WORDS)
    word = r.choice([word, word.upper(), word.capitalize(), "".join(
        c.upper() if r.random() < 0.5 else c for c in word)])
    if r.random() < 0.3:
        word = r.choice(["x", "in", "_", "é", "7", "", "\udcff"]) + word + r.choice(["s", "or", "_x", "é", "", "9"])
    return r.choice(["{}", "[{}]", "{}:", "<{}>", "level={}", '"level":"{}"', "|{}|"]).format(word) \
        if r.random() < 0.4 else word


def _token(r: random.Random):
    """A token of a line template: fixed text, or a maker drawing fresh digits/ids on each copy."""
    kind = r.random()
    if kind < 0.35:
        prefix = r.choice(_PREFIXES)
        n = r.choice([1, 3, 6, 7, 7, 8, 8, 8, 9, 10, 12, 16, 24, 32, r.randint(1, 40)])
        alphabet = r.choice(_HEX_ALPHABETS)
        return lambda q: prefix + "".join(q.choice(alphabet) for _ in range(n))
    if kind < 0.5:
        return _error_word(r)
    if kind < 0.58:
        digits = r.randint(1, 12)
        return lambda q: str(q.randrange(10 ** digits))
    if kind < 0.63:
        upper = r.random() < 0.3
        return lambda q: (str.upper if upper else str)(str(uuid.UUID(int=q.getrandbits(128))))
    if kind < 0.66:
        return lambda q: f"{q.randint(1, 9)}x{q.randint(0, 999)}"
    return r.choice(_OTHER)


def _template(r: random.Random, knobs: dict):
    """One line: stamp format (and glitch), tokens and separators, padding, ending."""
    if r.random() < knobs["binary"]:
        junk = r.randbytes(r.randint(0, 60))
        word = _b(_error_word(r)) if r.random() < 0.7 else b""
        cut = r.randint(0, len(junk))
        return lambda q, when: junk[:cut] + word + junk[cut:]
    stamp = knobs["main"] if r.random() >= knobs["mix"] else r.choice(_STAMPS)
    glitch = r.choice(_GLITCHES) if r.random() < knobs["glitch"] else None
    tokens = [_token(r) for _ in range(r.randint(0, 9))]
    if r.random() < knobs["errors"]:
        tokens.insert(r.choice([0, 0, 1, r.randint(0, len(tokens))]), _error_word(r))   # a level, or just a word
    lead = r.choice(_LEADS) if r.random() < 0.15 else ""
    seps = [r.choice(_SEPS) for _ in tokens]
    pad = (r.choice(_PADS), r.choice(_TARGETS)) if r.random() < knobs["long"] else None
    ending = r.choice(["", "", "", "\r", "\r\r", " \r", "\r \r"])
    gap = r.choice(["", " ", " ", "  ", "\t"])

    def render(q: random.Random, when: datetime) -> bytes:
        fields = dict(Y=f"{when:%Y}", y=f"{when:%y}", m=f"{when:%m}", d=f"{when:%d}", H=f"{when:%H}",
                      M=f"{when:%M}", S=f"{when:%S}", b=f"{when:%b}", e=f"{when.day:2d}", f=str(q.randint(0, 999999)),
                      n=str(q.randint(0, 99)))
        if glitch:
            fields[glitch[0]] = glitch[1]
        parts = [t if isinstance(t, str) else t(q) for t in tokens]
        head = stamp.format(**fields) + (gap if stamp else "") + lead.format(
            n=q.randint(0, 9999), h8="".join(q.choice("0123456789abcdef") for _ in range(q.choice([7, 8, 8, 12]))))
        body = "".join(p + s for p, s in zip(parts, seps))
        line = _b(head + body)
        if pad:
            char, target = pad
            last = _b(parts[-1]) if parts else b""
            room = target - len(line)
            if room > 0:
                at = len(line) - len(last) - len(_b(seps[-1] if seps else ""))
                filler = (_b(char) * room)[:room]
                line = line[:at] + filler + line[at:]
        return line + _b(ending)
    return render


def make_block(rng: random.Random, **overrides) -> bytes:
    """A block of whole lines: templates rendered ``copies`` times with fresh ids and numbers
    (memo hits on hex shapes), a clock that moves on and sometimes back."""
    knobs = dict(lines=rng.randint(1, 60), copies=rng.choice([1, 1, 2, 3, 6]), mix=rng.choice([0, 0, 0.05, 0.3, 1]),
                 glitch=rng.choice([0, 0, 0, 0.01, 0.1]), binary=rng.choice([0, 0, 0.05, 0.5]),
                 long=rng.choice([0, 0.02, 0.2]), errors=rng.choice([0.3, 0.7, 1.0]), empty=rng.choice([0, 0, 0.2]),
                 main=rng.choice(_MAIN * 3 + _STAMPS), steps=rng.choice([_STEPS, [0, 1, 2, 5], [1, 30, 600, -3]]))
    knobs.update(overrides)
    templates = [_template(rng, knobs) for _ in range(knobs["lines"])]
    when = datetime(rng.randint(2000, 2099), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                    rng.randint(0, 59), rng.randint(0, 59))
    out = []
    for _ in range(knobs["copies"]):
        for render in templates:
            when += timedelta(seconds=rng.choice(knobs["steps"]))
            out.append(b"" if rng.random() < knobs["empty"] else render(rng, when))
    return b"\n".join(out) + b"\n"


_seeds = st.integers(0, 2 ** 64 - 1)


@settings(max_examples=250, **SETTINGS)
@given(_seeds)
def test_c_table_equals_python_table(seed):
    assert_same_table(make_block(random.Random(seed)))


@settings(max_examples=60, **SETTINGS)
@given(_seeds, st.sampled_from([dict(long=0.5), dict(binary=0.5), dict(mix=1), dict(glitch=0.2, copies=1),
                                dict(empty=0.5, errors=1.0), dict(lines=1, copies=1), dict(copies=40)]))
def test_c_table_equals_python_table_on_extremes(seed, knobs):
    assert_same_table(make_block(random.Random(seed), **knobs))


@pytest.mark.parametrize("block", [
    b"\n", b"\n" * 1000, b"\r\n" * 10, b"ERR\n", b"err\n\n\n", b"er\nr\n", b"ER\rR\n", b"\r\rERROR\r\r\n",
    b"2024-01-01 10:00:00 ERROR x\n", b"2024-01-01 10:00:00\n", b"2024-01-01 10:00:00ERROR\n",
    b"2024-01-01 10:00:00 [INFO] x\n2024-01-01 10:59:59 ERROR y\n", b"2024-01-01 10:60:00 ERROR x\n",
    b"x ERROR\n2024-01-01 10:00:00 ERROR 7x1\n2024-01-01 10:00:00 ERROR 0x1\n",
    b"2024-01-01 10:00:00 ERROR " + b"a" * (MAX_LINE - 26) + b"\r\r\n",
    b"2024-01-01 10:00:00 ERROR " + b"a" * (MAX_LINE - 27) + b"1\r\n",
    b"2024-01-01 10:00:00 ERROR " + b"ab12" * 3000 + b"\n",
    b"2024-01-01 10:00:00 x" + b"\r" * 10000 + b"panic\n",
    b"2024-01-01 10:00:00 " + b"w" * 10000 + b" FATAL tail beyond the cut\n",
    b"\x00\xff\x80severe\x00\n\xff\n",
    b"2024-02-30 10:00:00 ERROR bad date\n2024-02-28 10:00:00 ERROR good\n",
], ids=repr)
def test_c_table_equals_python_table_on_edges(block):
    assert_same_table(block)


def test_the_usual_agent_block_takes_the_c_table():
    """One stamp layout, a third error lines, fresh ids: the C answers (a None here would
    silently send every collect the slow way)."""
    block = agent_log(3000)
    table = assert_same_table(block)
    assert table is not None and table[0] == 1000 and sum(row[1] for row in table[2]) == 1000
    taken = [assert_same_table(make_block(random.Random(seed), glitch=0, steps=[0, 1, 2, 5], mix=0, binary=0))
             is not None for seed in range(60)]
    assert sum(taken) >= 57, taken       # generated blocks with a sound clock: (nearly) always the C table


def test_hour_budget_boundary():
    def block(hours):
        return b"".join(b"2024-01-%02d %02d:00:00 ERROR x\n" % (1 + h // 24, h % 24) for h in range(hours))
    assert assert_same_table(block(MAX_HOURS)) is not None
    assert c_table(LogStats(now=NOW), block(MAX_HOURS + 1)) is None
    assert len(LogStats(now=NOW)._python_table(block(MAX_HOURS + 1))[1]) == MAX_HOURS + 1


def test_many_lines_keys_and_pairs_grow_the_buffers():
    lines = [b"2024-01-01 %02d:%02d:00 ERROR job%s done %d\n" % (h, m, bytes([97 + k % 26]) * (1 + k // 26), k)
             for k, (h, m) in enumerate((h, m) for h in range(20) for m in range(60))]
    block = b"".join(lines * 3) + b"2024-01-01 00:00:00 ERROR x\n" * 5000
    table = assert_same_table(block, warm=False)
    assert table is not None and len(table[2]) == 1201 and table[0] == 3 * 1200 + 5000


# --------------------------------------------------------------------------- hex shapes

_HEXCHARS = "0123456789abcdefABCDEF"
_WORD = st.one_of(
    st.text(alphabet=_HEXCHARS, min_size=1, max_size=40),
    st.tuples(st.sampled_from(_PREFIXES), st.text(alphabet=_HEXCHARS, min_size=6, max_size=12)).map("".join),
    st.sampled_from(["level=", "Level=", "xlevel=", "level", "=", "+", "-", ",", ".", ":", "é", "\udcff", "_",
                     "g", "\r", "0x", "7x", "X", "+0200", ",0123", "-1234", "ERR", "Emerg", "fAtAl", "CRIT",
                     "panic", "ALERT", "severe", "severity", "Sever", "emer", "fata", "cri", "pani", "aler",
                     "2024-01-01 10:00:00"]))
_GLUE = st.sampled_from(["", " ", ".", ":", ",", "+", "-", "=", "level=", "/", "_", "é", "\udcff", "\t", '"', "\x00"])


@st.composite
def _hex_lines(draw):
    parts = draw(st.lists(st.tuples(_WORD, _GLUE), min_size=0, max_size=12))
    line = "".join(a + b for a, b in parts)
    word = draw(st.sampled_from(["ERR", "err", "Emerg", "fAtAl", "CRIT", "panic", "ALERT", "severe", "Error"]))
    at = draw(st.integers(0, len(line)))
    line = line[:at] + word + line[at:]
    pad = draw(st.sampled_from([0, 0, 0, 1190, 1195, 1200, 8185]))
    if pad:
        cut = draw(st.integers(0, len(line)))
        line = line[:cut] + draw(st.sampled_from(["w", "a", "0", " "])) * max(0, pad - len(line)) + line[cut:]
    return _b(line)


@settings(max_examples=400, **SETTINGS)
@given(st.lists(_hex_lines(), min_size=1, max_size=8))
@example([b"ERR +0200abcd -1234beef ,0123abcd level=abcdef12 x=abcdef12 .abcdef12 :abcdef12 abcdef1"])
@example([b"ERR 1234567a 123456a abcdef12\xe9 \xe9abcdef12 _abcdef12 abcdef12_ 7xabcdef12 abcdef12g"])
@example([b"ERR ,a234567b ,1234567b +123abcdef -12345678a level=\x00abcdef12 evel=abcdef12"])
def test_c_hex_shapes_equal_hex_shape(lines):
    """Every candidate line reaches ``resolve`` (empty memo) with the shape health._hex_shape
    gives (lines over HEX_LIMIT: the digit shape only), in order; non-candidates never do."""
    block = b"\n".join(lines) + b"\n"
    seen = []

    def resolve(codes, shapes):
        assert codes == [None] * len(shapes)
        seen.extend(shapes)
        codes[:] = [(None, None)] * len(codes)
    table = _logscan.scan(block, {}, resolve, MAX_LINE, HEX_LIMIT)
    rows = candidate_rows(block)
    assert seen == [expected_shape(raw) for raw, _, _ in rows]
    odd = [(i, start, end) for i, (raw, start, end) in enumerate(rows) if health._DIGIT_X.search(raw)]
    assert table == (len(rows), [], [], [], odd, len(lines))   # a [1-9][xX] is always taken one by one


@settings(max_examples=150, **SETTINGS)
@given(st.binary(max_size=300), st.integers(1, 40), st.integers(-5, 400))
def test_shapes_cuts_and_candidates_on_arbitrary_bytes(data, max_line, hex_limit):
    """Any max_line and hex_limit: candidates cut to max_line and their trailing CRs,
    shaped only up to hex_limit; the offsets reported are those lines'."""
    block = data + b"\n"
    seen = []

    def resolve(codes, shapes):
        seen.extend(shapes)
        codes[:] = [("k", None)] * len(codes)        # every line an error of no stamp: all slow
    table = _logscan.scan(block, {}, resolve, max_line, hex_limit)
    rows = candidate_rows(block, max_line)
    digit = [raw.translate(health._DIGITS_TO_ZERO) for raw, _, _ in rows]
    assert seen == [health._hex_shape(s) if len(s) <= hex_limit else s for s in digit]
    assert table == (len(rows), [], [], [], [(i, start, end) for i, (_, start, end) in enumerate(rows)],
                     block.count(b"\n"))


# --------------------------------------------------------------------------- whole statistics


class _Counting:
    """health._logscan with its answers counted."""

    def __init__(self):
        self.tables = self.nones = 0

    def scan(self, *args):
        table = _logscan.scan(*args)
        if table is None:
            self.nones += 1
        else:
            self.tables += 1
        return table


def _feed(logs, chunk, max_groups):
    stats = LogStats(now=NOW, max_groups=max_groups)
    for log in logs:
        for i in range(0, len(log), chunk):
            stats.feed(log[i:i + chunk])
        stats.close()
    return stats


def _both_ways(monkeypatch, logs, chunk, max_groups):
    counting = _Counting()
    monkeypatch.setattr(health, "_logscan", counting)
    monkeypatch.setattr(health, "_ACCELERATED", True)
    fast = _feed(logs, chunk, max_groups)
    monkeypatch.setattr(health, "_ACCELERATED", False)
    slow = _feed(logs, chunk, max_groups)
    assert _everything(fast) == _everything(slow)
    assert fast.evicted == slow.evicted and fast.lines == slow.lines
    return counting


@settings(max_examples=40, **SETTINGS)
@given(_seeds, st.sampled_from([1 << 20, 4096, 333, 97]), st.sampled_from([health.MAX_GROUPS, 40, 8]))
def test_statistics_the_c_way_equal_the_python_way(seed, chunk, max_groups):
    """(b): groups, counts, first/last seen, examples, group order, timeline, error lines and
    the newest error, fed through the C and with health._ACCELERATED False, over several
    files, chunk sizes and group budgets."""
    rng = random.Random(seed)
    logs = [make_block(rng) + make_block(rng)[:-1], make_block(rng), make_block(rng, binary=0.5)]
    with pytest.MonkeyPatch.context() as monkeypatch:
        _both_ways(monkeypatch, logs, chunk, max_groups)


def test_statistics_take_the_c_way(monkeypatch):
    rng = random.Random(11)
    logs = [make_block(rng, glitch=0, steps=[0, 1, 2], mix=0.05, lines=200, copies=5) for _ in range(4)]
    counting = _both_ways(monkeypatch, logs, 1 << 16, health.MAX_GROUPS)
    assert counting.tables >= 4 and counting.nones == 0


def test_memo_overflow_both_ways(monkeypatch):
    """More distinct messages than the memos hold (MAX_SHAPES): generations and clears."""
    lines = [b"2024-03-04 10:%02d:00 [ERROR] job %s%x done\n" % (n % 60, bytes([97 + n % 26]) * (n % 50 + 1), n)
             for n in range(health.MAX_SHAPES * 2 + 500)]
    log = b"".join(lines)
    counting = _both_ways(monkeypatch, [log, log[::-1][1:] + b"\n"], 50000, health.MAX_GROUPS)
    assert counting.tables


# --------------------------------------------------------------------------- robustness


@settings(max_examples=200, **SETTINGS)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(data):
    block = data + b"\n"
    assert_same_table(block, warm=False)
    for bad in (data.rstrip(b"\n"), data + b"\n\r", data + b"\nx"):
        with pytest.raises(ValueError):
            c_table(LogStats(now=NOW), bad)


def test_bad_arguments():
    stats = LogStats(now=NOW)
    for block in (b"", b"x", b"ERROR\nx", b"\n\r"):
        with pytest.raises(ValueError):
            c_table(stats, block)
    for max_line in (0, -1, -(2 ** 62)):
        with pytest.raises(ValueError):
            _logscan.scan(b"ERR\n", {}, stats._hex_misses, max_line, HEX_LIMIT)
    with pytest.raises(TypeError):
        _logscan.scan("ERR\n", {}, stats._hex_misses, MAX_LINE, HEX_LIMIT)
    with pytest.raises(TypeError):
        _logscan.scan(b"ERR\n", [], stats._hex_misses, MAX_LINE, HEX_LIMIT)
    with pytest.raises(TypeError):
        _logscan.scan(b"ERR\n", {}, None, MAX_LINE, HEX_LIMIT)          # called: a miss
    assert _logscan.scan(b"INFO\n", {}, None, MAX_LINE, HEX_LIMIT) == (0, [], [], [], [], 1)   # not called
    with pytest.raises(OverflowError):
        _logscan.scan(b"ERR\n", {}, None, 2 ** 70, HEX_LIMIT)
    with pytest.raises(TypeError):
        _logscan.scan(b"ERR\n", {})
    # any buffer of whole lines reads like its bytes
    block = make_block(random.Random(3), glitch=0)
    expected = c_table(LogStats(now=NOW), block)
    for other in (bytearray(block), memoryview(block)):
        assert c_table(LogStats(now=NOW), other) == expected
    with pytest.raises((TypeError, BufferError, ValueError)):
        c_table(LogStats(now=NOW), memoryview(block)[::2])


_STAMPED = b"2024-01-01 10:00:00 ERROR a 1\n2024-01-01 10:00:01 ERROR b 22\nx FATAL c\n2024-01-01 11:00:00 INFO\n"
_LAYOUT = (0, b"0000-00-00 00:00:00")


def _memo_of(block: bytes, value) -> dict:
    """A memo holding ``value`` (or ``value()``, one for each) for every candidate line of ``block``."""
    return {expected_shape(raw): value() if callable(value) else value for raw in candidates(block)}


def _check_form(table, block):
    """A table (never a half-built one): every row's offsets inside the block."""
    if table is None:
        return
    n, hours, rows, pairs, slow, lines = table
    assert isinstance(n, int) and all(isinstance(h, bytes) and len(h) == 13 for h in hours)
    assert isinstance(lines, int) and n <= lines <= len(block)
    for row in rows:
        assert len(row) == 7 and 0 <= row[5] <= row[6] <= len(block)
    for row, hour, count in pairs:
        assert 0 <= row < len(rows) and 0 <= hour < len(hours) and count > 0
    for i, start, end in slow:
        assert 0 <= i < n and 0 <= start <= end <= len(block)
    repr(table)


@pytest.mark.parametrize("value", [
    None, 0, "k", b"k", (), ("k",), ("k", None, None), ["k", _LAYOUT], ("k", [0, b"x"]), ("k", ()),
    ("k", (-1, b"x")), ("k", (-(2 ** 70), b"x")), ("k", (2 ** 70, b"x")), ("k", (2 ** 63 - 1,)),
    ("k", (len(_STAMPED),)), ("k", (10,)), ("k", (11,)), ("k", (9,)), ("k", (1.5, b"x")), ("k", (True, b"x")),
    ("k", ("0", b"x")), ("k", (0,)), (None, _LAYOUT), ("k", "read each"), (1, _LAYOUT), (float("nan"), _LAYOUT),
    (b"key", _LAYOUT), (("tuple", "key"), _LAYOUT), ("k", (0, b"x", object())), ("k", (type("I", (int,), {})(0),)),
], ids=repr)
def test_memo_values_of_the_wrong_form(value):
    """Whatever the memo holds: a table whose offsets stay in the block, or None; never a crash."""
    stats = LogStats(now=NOW)
    for memo in (_memo_of(_STAMPED, value), {**_memo_of(_STAMPED, value), next(iter(_memo_of(_STAMPED, 0))): (
            "first", _LAYOUT)}):
        table = _logscan.scan(_STAMPED, memo, stats._hex_misses, MAX_LINE, HEX_LIMIT)
        _check_form(table, _STAMPED)


def test_a_layout_promising_a_stamp_past_the_line():
    """A memo saying the stamp of a short line (the block's last, or any) lies where the line has
    no 19 bytes: None, never a read past the line or the block."""
    for block in (b"2024-01-01 10:00:00 ERROR a\nx FATAL c\n", b"2024-01-01 10:00:00 ERROR a\nERR\n" + b"9" * 40 + b"\n",
                  b"2024-01-01 10:00:00 ERROR a\n" + b"2024-01-01 10:00:00 ERROR a\n" * 3 + b"2024-01-01 ERR\n"):
        assert _logscan.scan(block, _memo_of(block, ("k", _LAYOUT)), None, MAX_LINE, HEX_LIMIT) is None
        memo = _memo_of(block, ("k", (8, b"x")))
        memo[expected_shape(candidates(block)[0])] = ("k", (8, b"x"))
        assert _logscan.scan(block, memo, None, MAX_LINE, HEX_LIMIT) is None


def test_memo_keys_that_are_unhashable_or_raise():
    class Boom(Exception):
        pass

    class BadEq:
        def __hash__(self):
            return 7

        def __eq__(self, other):
            raise Boom

    for key, error in ((lambda: [1], TypeError), (BadEq, Boom), (dict, TypeError)):
        memo = _memo_of(_STAMPED, lambda: (key(), _LAYOUT))
        with pytest.raises(error):
            _logscan.scan(_STAMPED, memo, None, MAX_LINE, HEX_LIMIT)
    # a layout whose comparison raises
    memo = {**_memo_of(_STAMPED, ("k", _LAYOUT)), expected_shape(candidates(_STAMPED)[1]): ("k", BadEq())}
    with pytest.raises(Boom):
        _logscan.scan(_STAMPED, memo, None, MAX_LINE, HEX_LIMIT)
    # a memo key colliding with a shape's hash, whose comparison raises or mutates the memo
    shape = expected_shape(candidates(_STAMPED)[0])

    class Collide:
        def __init__(self, action):
            self.action = action

        def __hash__(self):
            return hash(shape)

        def __eq__(self, other):
            return self.action()

    memo = {Collide(lambda: (_ for _ in ()).throw(Boom())): 1}
    with pytest.raises(Boom):
        _logscan.scan(_STAMPED, memo, LogStats(now=NOW)._hex_misses, MAX_LINE, HEX_LIMIT)
    memo = {}
    memo[Collide(lambda: memo.clear() or False)] = 1
    for i in range(50):
        memo[Collide(lambda: memo.update({i: i}) or False)] = i
    _check_form(_logscan.scan(_STAMPED, memo, LogStats(now=NOW)._hex_misses, MAX_LINE, HEX_LIMIT), _STAMPED)


def test_resolve_that_raises_propagates():
    class Boom(Exception):
        pass

    def resolve(codes, shapes):
        raise Boom("from resolve")
    with pytest.raises(Boom, match="from resolve"):
        _logscan.scan(_STAMPED, {}, resolve, MAX_LINE, HEX_LIMIT)
    assert _logscan.scan(b"INFO only\n", {}, resolve, MAX_LINE, HEX_LIMIT) == (0, [], [], [], [], 1)   # no misses


def _resolvers():
    real = LogStats(now=NOW)._hex_misses

    def fill(codes, shapes):
        real(codes, shapes)

    def nothing(codes, shapes):
        pass

    def half(codes, shapes):
        real(codes, shapes)
        codes[len(codes) // 2] = None

    def shrink(codes, shapes):
        real(codes, shapes)
        codes.pop()

    def grow(codes, shapes):
        real(codes, shapes)
        codes.append(codes[0])

    def clear(codes, shapes):
        codes.clear()

    def replace(codes, shapes):
        real(codes, shapes)
        codes[:] = list(codes) + list(codes)

    def same_size_new_items(codes, shapes):
        codes[:] = [("k", (i, b"x" * 19)) for i in range(len(codes))]

    def wrong_items(codes, shapes):
        codes[:] = [i for i in range(len(codes))]

    def shapes_changed(codes, shapes):
        real(codes, shapes)
        shapes.clear()
        shapes.append(b"x")

    def returns_something(codes, shapes):
        real(codes, shapes)
        return codes

    def reentrant(codes, shapes):
        assert _logscan.scan(_STAMPED, {}, real, MAX_LINE, HEX_LIMIT) is not None
        real(codes, shapes)

    return [fill, nothing, half, shrink, grow, clear, replace, same_size_new_items, wrong_items, shapes_changed,
            returns_something, reentrant]


@pytest.mark.parametrize("resolve", _resolvers(), ids=lambda f: f.__name__)
@pytest.mark.parametrize("memo_kind", ["empty", "partial", "mutated"])
def test_resolve_that_misbehaves(resolve, memo_kind):
    stats = LogStats(now=NOW)
    memo = {} if memo_kind == "empty" else dict(list(_memo_of(_STAMPED, ("k", _LAYOUT)).items())[:1])

    def resolving(codes, shapes):
        if memo_kind == "mutated":
            memo.clear()
            memo.update({b"x" * n: None for n in range(100)})
        return resolve(codes, shapes)
    block = _STAMPED * 3
    table = _logscan.scan(block, memo, resolving, MAX_LINE, HEX_LIMIT)
    _check_form(table, block)
    if resolve.__name__ in ("nothing", "half", "shrink", "grow", "clear", "replace", "wrong_items"):
        assert table is None
    if resolve.__name__ in ("fill", "returns_something", "reentrant", "shapes_changed") and memo_kind == "empty":
        assert table == stats._python_table(block)


def test_resolve_that_keeps_the_list_and_changes_it_later():
    """A layout or key compared in the table pass (Python __eq__/__hash__) while resolve kept
    the codes list: emptying or refilling it then must not free what the C still reads."""
    block = _STAMPED * 4
    held = []

    class Evil:
        def __init__(self, action):
            self.action = action

        def __eq__(self, other):
            if held:
                self.action(held[0])
                gc.collect()
            return False

        def __hash__(self):
            if held:
                self.action(held[0])
                gc.collect()
            return 1

    actions = [list.clear, lambda codes: codes.extend([("x", None)] * 100000),
               lambda codes: codes.__setitem__(slice(None), [7] * len(codes))]
    for action in actions:
        for where in ("layout", "key"):
            def resolve(codes, shapes):
                held[:] = [codes]
                codes[0] = (f"first{len(codes)}", (0, b"x" * 19))
                for i in range(1, len(codes)):
                    evil = Evil(action)
                    codes[i] = (evil, (0, b"y" * 19)) if where == "key" else (f"k{i}", evil)
            table = _logscan.scan(block, {}, resolve, MAX_LINE, HEX_LIMIT)
            held.clear()
            _check_form(table, block)


def test_keys_whose_equality_changes_never_leave_holes():
    """Keys that are "not equal" when looked up and "equal" when stored: a slot must not be lost
    (a NULL in the rows list)."""
    class Fickle:
        calls = 0

        def __hash__(self):
            return 1

        def __eq__(self, other):
            Fickle.calls += 1
            return Fickle.calls % 2 == 0

    def resolve(codes, shapes):
        codes[:] = [(Fickle(), _LAYOUT) for _ in codes]
    block = b"2024-01-01 10:00:00 ERROR a\n" * 5
    table = _logscan.scan(block, {}, resolve, MAX_LINE, HEX_LIMIT)
    _check_form(table, block)
    if table is not None:
        assert all(row is not None for row in table[2])
        assert sum(row[1] for row in table[2]) == 5


def test_a_bytearray_block_changed_or_resized_by_resolve():
    real = LogStats(now=NOW)._hex_misses
    block = bytearray(_STAMPED * 3)

    def scribble(codes, shapes):
        real(codes, shapes)
        block[:] = bytes(len(block))[:-1] + b"\n"        # same length: allowed, contents gone

    _check_form(_logscan.scan(block, {}, scribble, MAX_LINE, HEX_LIMIT), block)

    def resize(codes, shapes):
        block.extend(b"more\n" * 1000)
    block[:] = _STAMPED * 3
    with pytest.raises(BufferError):
        _logscan.scan(block, {}, resize, MAX_LINE, HEX_LIMIT)


def test_no_leaks_on_any_path():
    """Python objects and C buffers of each path (table, None, exception) are all freed."""
    block = make_block(random.Random(8), glitch=0, mix=0.3, copies=3)
    bad_minutes = b"2024-01-01 10:60:00 ERROR x\n" + block

    class Boom(Exception):
        pass

    def boom(codes, shapes):
        raise Boom

    def shrink(codes, shapes):
        codes.pop()

    def far(codes, shapes):
        codes[:] = [("k", (10 ** 6,))] * len(codes)

    def run():
        stats = LogStats(now=NOW)
        c_table(stats, block)                       # misses
        c_table(stats, block)                       # hits
        c_table(stats, bad_minutes)
        _logscan.scan(block, {}, shrink, MAX_LINE, HEX_LIMIT)
        with pytest.raises(Boom):
            _logscan.scan(block, {}, boom, MAX_LINE, HEX_LIMIT)
        with pytest.raises(ValueError):
            _logscan.scan(block[:-1], {}, boom, MAX_LINE, HEX_LIMIT)
        _logscan.scan(block, {}, far, MAX_LINE, HEX_LIMIT)         # a stamp offset past the block

    for _ in range(3):
        run()
    gc.collect()
    blocks = sys.getallocatedblocks()
    for _ in range(30):
        run()
    gc.collect()
    assert sys.getallocatedblocks() - blocks < 30            # not one object a run
    tracemalloc.start()
    try:
        run()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            run()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown                           # C buffers (PyMem) freed too


def test_jcdiag_logscan_python_forces_the_python_table():
    """JCDIAG_LOGSCAN=python (any case, spaces) is read at import: the C is never called."""
    code = ("from collector import health\n"
            "assert health._ACCELERATED is False and health._logscan is not None\n"
            "def refuse(*args): raise AssertionError('scan called')\n"
            "health._logscan = type('NoScan', (), {'scan': staticmethod(refuse)})\n"
            "stats = health.LogStats()\n"
            "stats.feed(b'2024-01-01 10:00:00 ERROR a 1\\n' * 50)\n"
            "assert stats.error_lines == 50\n")
    for value in ("python", " Python "):
        env = {**os.environ, "JCDIAG_LOGSCAN": value}
        subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=str(_ROOT))
    assert health._ACCELERATED or os.environ.get("JCDIAG_LOGSCAN", "").strip().lower() == "python"


def test_near_miss_words_are_no_candidates_and_the_words_in_any_case_are():
    """Every error word is a whole prefix test: one letter short is no error word
    ("sever", "aler", "fata", "pani", "cri", "emer", "er"), a longer word holding one is."""
    misses = [b"2026-11-01 10:00:00 several sever aler fata pani cri emer er ERX\n"]
    table = assert_same_table(b"".join(misses))
    assert table is not None and table[0] == 0
    hits = b"".join(b"2026-11-01 10:00:%02d [INFO] %s\n" % (i, word) for i, word in enumerate(
        [b"SEVERE", b"alerts", b"FaTaL", b"panicked", b"CRITICAL", b"emergency", b"errno", b"xERRx"]))
    table = assert_same_table(hits)
    assert table is not None and table[0] == 8
