#!/usr/bin/env python3
"""What the safe ``jcdiag open`` costs, and how fast it refuses a bomb and a hostile header.

    python scripts/bench_open.py               # 100 MB of log-like data
    python scripts/bench_open.py --size 300

Builds a password-protected bundle of ``--size`` MB of text files (the project's
own 7z writer) in a private temporary folder (removed at the end), then prints:
the time of ``collector.unpack.open_bundle`` (header schema, SHA-256 while copying
the payload, listing checks, counted writes, rename) next to py7zr's plain
``extractall`` of the same payload (what ``open`` did before), the time to refuse
a 1 GiB zero bomb under ``--max-extract-size 64M``, and the time to parse and
validate a 1 MiB header and to refuse a 200,000-level nested one.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.bundle import BundleError                            # noqa: E402
from collector.header import HeaderError, parse_header              # noqa: E402
from collector.unpack import Credentials, open_bundle               # noqa: E402
from tests import hostile                                           # noqa: E402


def _logs(folder: Path, megabytes: int) -> dict[str, Path]:
    rng = random.Random(7)
    words = [f"word{i}" for i in range(500)]
    files = {}
    for n in range(max(1, megabytes // 5)):
        path = folder / f"jcagent.log.{n}"
        with open(path, "w") as fh:
            while fh.tell() < 5 * 1024 * 1024:
                fh.write(f"2026-11-01 10:{n % 60:02d}:00 [INFO] " + " ".join(rng.choices(words, k=12)) + "\n")
        files[f"logs/agent/{path.name}"] = path
    return files


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=100, help="MB of log data in the bundle")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jcdiag-bench-open-"))
    try:
        src = tmp / "src"
        src.mkdir()
        files = _logs(src, args.size)
        payload = tmp / "payload.7z"
        from collector import sevenzip
        with sevenzip.StreamingWriter(payload, hostile.PASSWORD) as writer:
            for name, path in files.items():
                writer.add_file(path, name)
        bundle = hostile.bundle(tmp / "b.7z", hostile.header_for(payload), payload)
        total = sum(p.stat().st_size for p in files.values())
        creds = Credentials(password=hostile.PASSWORD)

        safe = _timed(lambda: open_bundle(bundle, creds, tmp / "safe"))
        import py7zr

        def plain():
            with py7zr.SevenZipFile(payload, "r", password=hostile.PASSWORD) as z:
                z.extractall(tmp / "plain")
        before = _timed(plain)
        print(f"open {total / 1e6:.0f} MB ({len(files)} files, bundle {bundle.stat().st_size / 1e6:.1f} MB): "
              f"safe open_bundle {safe:.2f} s ({total / 1e6 / safe:.0f} MB/s); "
              f"py7zr extractall alone {before:.2f} s")

        bomb_payload = hostile.sparse_payload(tmp / "bomb.payload", "zeros.log", 1024 ** 3)
        bomb = hostile.bundle(tmp / "bomb.7z", hostile.header_for(bomb_payload), bomb_payload)

        def refuse_bomb():
            try:
                open_bundle(bomb, creds, tmp / "bomb-out", max_size=64 * 1024 ** 2)
            except BundleError as exc:
                assert exc.kind == "extract_cap_exceeded"
        print(f"bomb: {bomb.stat().st_size / 1e3:.0f} kB bundle declaring 1 GiB refused in "
              f"{_timed(refuse_bomb) * 1000:.0f} ms; nothing written: {not (tmp / 'bomb-out').exists()}")

        big = json.dumps(hostile.header_for(payload, padding="x" * (1024 * 1024 - 600))).encode()
        print(f"header: {len(big)} bytes parsed and validated in {_timed(lambda: parse_header(big)) * 1000:.1f} ms")
        deep = b'{"format": "jcdiag-bundle/1", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"

        def refuse_deep():
            try:
                parse_header(deep)
            except HeaderError:
                pass
        print(f"header nested 200,000 deep refused in {_timed(refuse_deep) * 1000:.1f} ms")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
