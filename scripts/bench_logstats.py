"""Benchmark: ``LogStats.feed`` on the redacted bytes of an agent log, in MB/s of CPU time.

The way the collect pipeline feeds it: the log is redacted first
(``Redactor().text_stream(...)`` in 1 MiB feeds, not timed), then the redacted bytes
go to a fresh :class:`collector.health.LogStats` in 1 MiB feeds.  Time is
``time.process_time`` (CPU, so other users of a shared machine count less); the
machine is shared, so each log is run ``--rounds`` times and the minimum is reported.
MB/s is over the unredacted file's size.  Hosts come from ``scripts/genhost.py``
(e.g. ``/var/tmp/jch/host-200M-e35-seed7``); prints one line per log.

    python scripts/bench_logstats.py /var/tmp/jch/host-200M-e35-seed7 /var/tmp/jch/host-200M-e5-seed7
    python scripts/bench_logstats.py --rounds 7 --profile /tmp/stats.prof HOST
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector.health import LogStats  # noqa: E402
from collector.redact import Redactor  # noqa: E402

FEED = 1 << 20


def redacted(data: bytes, name: str) -> bytes:
    stream = Redactor().text_stream(f"logs/{name}")
    out = [stream.feed(data[i:i + FEED]) for i in range(0, len(data), FEED)]
    out.append(stream.close())
    return b"".join(out)


def feed_seconds(data: bytes) -> float:
    stats = LogStats(now=datetime(2026, 12, 1))
    start = time.process_time()
    for i in range(0, len(data), FEED):
        stats.feed(data[i:i + FEED])
    stats.close()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("hosts", nargs="+", help="host trees made by scripts/genhost.py")
    parser.add_argument("--log", default="var/log/jcagent.log", help="the log inside each host")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of one more run here")
    args = parser.parse_args()
    for host in args.hosts:
        path = Path(host) / args.log
        raw = path.read_bytes()
        data = redacted(raw, path.name)
        times = [feed_seconds(data) for _ in range(args.rounds)]
        mb = len(raw) / 1e6
        print(f"{host}: {mb:.1f} MB  min {min(times):.3f}s = {mb / min(times):.1f} MB/s  "
              f"(runs: {' '.join(f'{t:.3f}' for t in times)})", flush=True)
        if args.profile:
            import cProfile
            cProfile.runctx("feed_seconds(data)", globals(), {"data": data}, args.profile)


if __name__ == "__main__":
    main()
