#!/usr/bin/env python3
"""Scrubber throughput on generated agent-like logs (issue 4's benchmark).

    python scripts/bench_redact.py                  # 200 MB, default rules
    python scripts/bench_redact.py --obfuscate      # also with pseudonyms
    python scripts/bench_redact.py --size 50 --compression --min-mbps 40

Generates the logs in a private temporary directory (removed at the end): files
of 5 MB like jcagent.log and its rotations, with the lines an agent writes
(heartbeats, policies with UUIDs and sha256s, API calls, user sync, updates)
and, now and then, a line that holds a secret.  Reads them in 1 MiB chunks
through ``Redactor.text_stream`` as a collect does and prints MB/s.  With
``--compression`` it also times py7zr's LZMA2 preset 1 on a sample and says
how much scrubbing adds to a collect's wall time, where compression dominates.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.pseudonym import Pseudonymizer  # noqa: E402
from collector.redact import RULESET_VERSION, Redactor  # noqa: E402

MB = 1_000_000
FILE_SIZE = 5 * 1024 * 1024
LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "DEBUG", "TRACE", "WARN", "ERROR")

# Everyday agent lines.  {k} system key, {u} uuid, {h} sha256, {n} number, {ip} address.
ORDINARY = (
    "[{lvl}] Heartbeat ok in {n}ms (next in 60s)",
    "[{lvl}] Sending heartbeat to https://agent.jumpcloud.com/api/systems/{k}/heartbeat status=200",
    "[{lvl}] Applying policy {u} (Disable USB storage) result=success duration={n}ms",
    "[{lvl}] Downloaded /opt/jc/policies/{u}/payload.sh sha256={h}",
    "[{lvl}] Command {k} finished exit=0 duration={n}ms output sha256={h}",
    "[{lvl}] GET https://console.jumpcloud.com/api/v2/systems/{k}/memberof 200 OK in {n}ms",
    "[{lvl}] Syncing user alice (id {u}) uid=1001 gid=1001 home=/home/alice shell=/bin/bash",
    "[{lvl}] Lockout cache updated for {n} users from /opt/jc/lockoutCache.json",
    "[{lvl}] Agent update check: current=2.14.0 latest=2.14.1 channel=stable",
    "[{lvl}] Process jumpcloud-agent pid={n} rss={n}KB cpu=0.{n}% threads=14",
    "[{lvl}] systemKey={k} certuuid={h32} connected from {ip}",
    "[{lvl}] Token refreshed, expires in 3600s",
    "[{lvl}] Reading configuration from /opt/jc/jcagent.conf (systemKey {k})",
    "[{lvl}] Loaded TLS client certificate /opt/jc/client.crt and key /opt/jc/client.key",
    "[{lvl}] password policy updated: minLength=12 passwordExpirationDays=90",
    "[{lvl}] Wrote /var/log/jcagent.log rotation jcagent.log.1 ({n} bytes)",
    "[{lvl}] MDM profile {u} installed by com.jumpcloud.darwin-agent",
    "[{lvl}] websocket message type=command id={u} size={n}",
)
# Rare lines with a secret (about 1 in 2000).
SECRET = (
    "[DEBUG] Loaded config: {{\"systemKey\":\"{k}\",\"systemToken\":\"{u}\",\"clientKey\":\"/opt/jc/client.key\"}}",
    "[DEBUG] HTTP request POST https://agent.jumpcloud.com/api/v2/events Authorization: Bearer {jwt}",
    "[DEBUG] Reinstall hint: curl --header 'x-connect-key: {h40}' https://kickstart.jumpcloud.com/Kickstart",
    "[DEBUG] userMgmt update: local_ldap_bind_pwd={b64}",
    "[DEBUG] Using proxy https_proxy=http://jcproxy:{b64}@proxy.corp.example.com:3128",
)


def _jwt(rng: random.Random) -> str:
    part = lambda n: base64.urlsafe_b64encode(rng.randbytes(n)).rstrip(b"=").decode()  # noqa: E731
    return f"eyJhbGciOiJSUzI1NiJ9.{part(90)}.{part(64)}"


def _lines(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct agent-like log lines, one in 2000 with a secret."""
    pool: list[str] = []
    for i in range(count):
        fields = dict(
            lvl=rng.choice(LEVELS), k=rng.randbytes(12).hex(), u=str(uuid.UUID(int=rng.getrandbits(128))),
            h=hashlib.sha256(rng.randbytes(8)).hexdigest(), h32=rng.randbytes(16).hex(), h40=rng.randbytes(20).hex(),
            n=rng.randint(1, 99999), ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            jwt=_jwt(rng), b64=base64.b64encode(rng.randbytes(24)).decode())
        template = rng.choice(SECRET) if i % 2000 == 0 else rng.choice(ORDINARY)
        stamp = f"2024-05-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} "
        pool.append(stamp + template.format(**fields) + "\n")
    return pool


def generate(directory: Path, size: int, seed: int = 4) -> list[Path]:
    """Write ``size`` bytes of agent-like logs as 5 MB files; return their paths.

    Lines are drawn from a pool of 40,000 so 200 MB generate in about a second;
    the scrubber does the same work on every line whether it repeats or not.
    """
    rng = random.Random(seed)
    pool = _lines(rng, 40_000)
    block = "".join(rng.choices(pool, k=60_000)).encode()
    files = []
    written = 0
    index = 0
    while written < size:
        path = directory / (f"jcagent.log.{index}" if index else "jcagent.log")
        want = min(FILE_SIZE, size - written)
        with open(path, "wb") as fh:
            left = want
            while left > 0:
                start = rng.randrange(0, len(block) // 2)
                piece = block[start:start + min(left, len(block) // 2)]
                fh.write(piece)
                left -= len(piece)
        files.append(path)
        written += want
        index += 1
    return files


def scrub_all(files: list[Path], redactor: Redactor, chunk: int) -> tuple[float, float, int]:
    """Scrub every file as a collect would; return wall seconds, CPU seconds and bytes."""
    total = 0
    start = time.perf_counter()
    cpu = time.process_time()
    for path in files:
        scrubber = redactor.text_stream(f"logs/{path.name}")
        with open(path, "rb") as fh:
            while True:
                data = fh.read(chunk)
                if not data:
                    break
                total += len(data)
                scrubber.feed(data)
        scrubber.close()
    return time.perf_counter() - start, time.process_time() - cpu, total


def read_all(files: list[Path], chunk: int) -> float:
    start = time.perf_counter()
    for path in files:
        with open(path, "rb") as fh:
            while fh.read(chunk):
                pass
    return time.perf_counter() - start


def compression_rate(sample: Path, workdir: Path) -> float:
    """MB/s of py7zr LZMA2 preset 1 (jcdiag's bundle setting) on ``sample``."""
    import py7zr

    target = workdir / "sample.7z"
    start = time.perf_counter()
    with py7zr.SevenZipFile(target, "w", filters=[{"id": py7zr.FILTER_LZMA2, "preset": 1}]) as archive:
        archive.write(sample, sample.name)
    seconds = time.perf_counter() - start
    target.unlink()
    return sample.stat().st_size / MB / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=200, help="megabytes of logs to generate (default 200)")
    parser.add_argument("--chunk", type=int, default=1024, help="read size in KiB (default 1024)")
    parser.add_argument("--obfuscate", action="store_true", help="also measure with pseudonyms on")
    parser.add_argument("--compression", action="store_true",
                        help="also time LZMA2 preset 1 on a 16 MB sample and report the added share")
    parser.add_argument("--min-mbps", type=float, default=0, help="exit 1 when the default scrubber is slower")
    args = parser.parse_args(argv)
    size = int(args.size * MB)
    chunk = args.chunk * 1024
    workdir = Path(tempfile.mkdtemp(prefix="jcdiag-bench-"))
    try:
        start = time.perf_counter()
        files = generate(workdir, size)
        print(f"generated {size / MB:.1f} MB of agent-like logs in {len(files)} files under {workdir} "
              f"in {time.perf_counter() - start:.1f} s")
        read_all(files, chunk)                                     # warm the page cache
        io = read_all(files, chunk)
        print(f"plain read: {size / MB / io:.0f} MB/s")
        redactor = Redactor()
        seconds, cpu, total = scrub_all(files, redactor, chunk)
        rate = total / MB / seconds
        report = redactor.report()
        vendor = len(redactor.vendor_rules.rules) if redactor.vendor_rules is not None else 0
        print(f"scrubber, default rules {RULESET_VERSION} + {vendor} vendor token rules: "
              f"{total / MB:.1f} MB in {seconds:.2f} s = "
              f"{rate:.1f} MB/s wall, {total / MB / cpu:.1f} MB/s of CPU time "
              f"({report['total_redactions']} redactions)")
        if args.obfuscate:
            pseudo = Pseudonymizer(hostnames=["ubuntu-2204"], usernames=["alice"], domains=["corp.example.com"])
            seconds_o, cpu_o, total_o = scrub_all(files, Redactor(pseudonymizer=pseudo), chunk)
            print(f"scrubber with --obfuscate: {total_o / MB / seconds_o:.1f} MB/s wall, "
                  f"{total_o / MB / cpu_o:.1f} MB/s of CPU time")
        if args.compression:
            # Compression (unlike scrubbing) runs faster on repeated text, so it is
            # timed on 16 MB of lines that never repeat.
            sample = workdir / "sample.log"
            rng = random.Random(7)
            with open(sample, "w") as dst:
                while dst.tell() < 16 * MB:
                    dst.write("".join(_lines(rng, 20_000)))
            lzma = compression_rate(sample, workdir)
            share = lzma / rate * 100
            print(f"compression, py7zr LZMA2 preset 1: {lzma:.1f} MB/s; scrubbing adds {share:.0f} % "
                  f"to the time a collect spends compressing (target <= 25 %)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory of this process: {peak:.0f} MB")
        if args.min_mbps and rate < args.min_mbps:
            print(f"FAIL: {rate:.1f} MB/s is below {args.min_mbps:g} MB/s", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
