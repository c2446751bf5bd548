"""What redaction adds to a whole ``collect``: the same run with the real scrubber and with a
pass-through stand-in, on a generated agent host (issue 4: at most +25% wall time).

    python scripts/bench_redact_overhead.py --size 200M --rounds 3

The stand-in exists only in this script; jcdiag itself has no way to turn redaction off.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genhost import make_host  # noqa: E402
from collector.config import parse_size  # noqa: E402

from collector.envelope import keygen, load_recipient_file  # noqa: E402
from collector.pipeline import CollectOptions, collect  # noqa: E402
from collector.redact import Redactor  # noqa: E402
from collector.gather import Limits  # noqa: E402


class _PassThrough:
    hits: dict = {}

    def feed(self, data: bytes) -> bytes:
        return data

    def close(self) -> bytes:
        return b""


class NoRedaction(Redactor):
    """Baseline only: copies text unchanged, to measure the scrubber's share of a collect."""

    def text_stream(self, artifact: str):
        return _PassThrough()

    def structured(self, artifact: str, data: bytes, fmt: str) -> bytes:
        return data


def one_run(root: Path, out: Path, recipient, redactor: Redactor) -> float:
    opts = CollectOptions(output=out, platform="linux", root=str(root), recipients=[recipient],
                          redactor=redactor, limits=Limits(max_file_size=4 << 30, max_bundle_size=8 << 30))
    started = time.perf_counter()
    result = collect(opts)
    elapsed = time.perf_counter() - started
    result.path.unlink()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="200M", type=parse_size)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="jcdiag-redbench-") as tmp:
        tmp = Path(tmp)
        root = make_host(tmp / "host", args.size)
        size = sum(p.stat().st_size for p in (root / "var/log").iterdir())
        _, pub = keygen(tmp / "k")
        recipient = load_recipient_file(pub)
        times: dict[str, list[float]] = {"no redaction": [], "default rules": []}
        for _ in range(args.rounds):
            times["no redaction"].append(one_run(root, tmp / "out", recipient, NoRedaction()))
            times["default rules"].append(one_run(root, tmp / "out", recipient, Redactor()))
        base = statistics.median(times["no redaction"])
        full = statistics.median(times["default rules"])
        print(f"agent logs: {size / 1e6:.1f} MB, {args.rounds} rounds, median wall time of a whole collect")
        for name, values in times.items():
            print(f"  {name:<14} {statistics.median(values):7.2f} s   ({', '.join(f'{v:.2f}' for v in values)})")
        print(f"  redaction adds {100 * (full - base) / base:+.1f}% to the collect's wall time")


if __name__ == "__main__":
    main()
