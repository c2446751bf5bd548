#!/usr/bin/env python3
"""Scrubber CPU throughput on the logs of real (or genhost-generated) host trees.

    python scripts/bench_scrub.py /var/tmp/jch/host-200M-e5-seed7 /var/tmp/jch/host-200M-e35-seed7
    python scripts/bench_scrub.py HOST... --runs 5 --chunk 64 --files jcagent.log syslog

``scripts/bench_redact.py`` measures synthetic agent lines; this one measures the
files a collect actually reads (``var/log/<name>`` of each host tree), fed to
``Redactor().text_stream`` in 1 MiB chunks as a collect does (``--chunk`` KiB).  CPU time
(``time.process_time``), the minimum of ``--runs`` runs, because the machine is
shared.  The SHA-256 of the scrubbed output is printed beside each number, so
two versions of the scrubber can be compared for identical output (and chunk
sizes: the output must not depend on them).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.redact import Redactor  # noqa: E402

def scrub(data: bytes, chunk: int) -> tuple[float, bytes]:
    """CPU seconds to scrub ``data`` fed in ``chunk``-byte pieces, and the scrubbed bytes."""
    redactor = Redactor()
    start = time.process_time()
    stream = redactor.text_stream("logs/bench.log")
    out = [stream.feed(data[i:i + chunk]) for i in range(0, len(data), chunk)]
    out.append(stream.close())
    return time.process_time() - start, b"".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hosts", nargs="+", type=Path, help="host trees (with var/log/...)")
    parser.add_argument("--files", nargs="+", default=["jcagent.log", "syslog", "auth.log"])
    parser.add_argument("--runs", type=int, default=3, help="runs per file; the fastest counts")
    parser.add_argument("--chunk", type=int, default=1024, help="feed size in KiB (default 1024)")
    args = parser.parse_args(argv)
    for host in args.hosts:
        for name in args.files:
            data = (host / "var" / "log" / name).read_bytes()
            best, digest = float("inf"), None
            for _ in range(args.runs):
                seconds, out = scrub(data, args.chunk * 1024)
                best = min(best, seconds)
                digest = hashlib.sha256(out).hexdigest()
            mb = len(data) / 1e6
            print(f"{host.name:24s} {name:12s} {mb:6.1f} MB {best:6.3f} s {mb / best:6.1f} MB/s "
                  f"sha256 {digest[:16]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
