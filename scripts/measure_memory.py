"""Peak memory of a full ``jcdiag collect`` with large logs, measured with /usr/bin/time -v.

Generates an agent host with about --size of logs (default 500M) in a temporary
folder, runs the real CLI on it (``--root``, sealed to a fresh key) under
``/usr/bin/time -v`` and prints peak RSS, wall time, input and bundle sizes.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genhost import make_host  # noqa: E402


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].isalpha() else int(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="500M")
    ap.add_argument("--keep", action="store_true", help="keep the generated host")
    args = ap.parse_args()
    from collector.envelope import keygen

    with tempfile.TemporaryDirectory(prefix="jcdiag-mem-") as tmp:
        tmp = Path(tmp)
        root = make_host(tmp / "host", parse_size(args.size))
        logs = sum(p.stat().st_size for p in (root / "var/log").iterdir())
        _, pub = keygen(tmp / "support")
        out = tmp / "out"
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "collector", "collect", "--root", str(root),
               "--platform", "linux", "--recipient", str(pub), "--output", str(out), "--json",
               "--max-bundle-size", "4G"]
        r = subprocess.run(cmd, capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parent.parent)
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
        wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", r.stderr).group(1)
        bundle = next(out.glob("*.7z"), None)
        print(f"input logs        {logs / 1e6:10.1f} MB")
        print(f"exit code         {r.returncode:10d}")
        print(f"peak RSS          {rss_kb / 1024:10.1f} MiB")
        print(f"wall time         {wall:>10}")
        print(f"bundle size       {(bundle.stat().st_size / 1e6 if bundle else 0):10.1f} MB")
        if args.keep:
            print(f"kept {root}")
            input("press enter to delete")


if __name__ == "__main__":
    main()
