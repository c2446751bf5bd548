"""Benchmark: the HTML report of a bundle whose agent logs hold about 1 million lines (issue 17).

Generates a realistic Linux host (``scripts/genhost.py``; 5% of agent lines are errors,
spread over ten days of rotations), makes a real bundle with ``jcdiag collect`` (caps large
enough that nothing is truncated), opens it with ``jcdiag open``, then measures, median of
``--rounds``:

* ``render``: the page from the extracted folder in this process
  (:func:`collector.bundle_report.render_folder`: read the four documents, list the
  files, render) — what the issue's "under 2 s" is about;
* ``render_only``: :func:`collector.html_report.render` on documents already parsed;
* ``report_cli``: the whole ``jcdiag report BUNDLE`` as a child process (start-up,
  checksum, decrypting and extracting the payload into a private temporary folder,
  render, write), for comparison;

and prints the page's size against the 2 MB bound (one JSON object with ``--json``).

    python scripts/bench_report.py                 # 1M lines
    python scripts/bench_report.py --lines 200000 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genhost import make_host  # noqa: E402
from collector import bundle_report, html_report  # noqa: E402
from collector.bundle import read_header  # noqa: E402

PASSWORD = "bench-report-password"
BYTES_PER_LINE = 140       # genhost's agent lines average ~115 bytes; agent logs are 85% of a host
LIMIT_MS, LIMIT_BYTES = 2000, 2 * 1024 * 1024


def jcdiag(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "collector", *args], cwd=REPO, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, env={**os.environ, "JCDIAG_SPOOL": os.environ["BENCH_SPOOL"]})
    if r.returncode not in (0, 3):
        sys.exit(f"jcdiag {args[0]} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def agent_lines(root: Path) -> int:
    total = 0
    for path in (root / "var/log").glob("jcagent.log*"):
        with open(path, "rb") as fh:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return total


def timed(work, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="agent log lines to generate (about)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="jcdiag-bench-report-") as tmp:
        tmp = Path(tmp)
        os.environ["BENCH_SPOOL"] = str(tmp / "spool")
        root = make_host(tmp / "root", args.lines * BYTES_PER_LINE)
        lines = agent_lines(root)
        pw = tmp / "pw"
        pw.write_text(PASSWORD + "\n")
        start = time.perf_counter()
        made = json.loads(jcdiag("collect", "--root", str(root), "--platform", "linux", "--password-file",
                                 str(pw), "--output", str(tmp / "out"), "--max-file-size", "1G",
                                 "--max-bundle-size", "8G", "--normal-priority", "--json", "--yes").stdout)
        collect_s = time.perf_counter() - start
        bundle = Path(made["path"])
        opened = tmp / "opened"
        jcdiag("open", str(bundle), "--password-file", str(pw), "--to", str(opened))
        header = read_header(bundle)

        render_s = timed(lambda: bundle_report.render_folder(opened, header), args.rounds)
        documents, problems = bundle_report.read_documents(opened)
        files, total = bundle_report.list_files(opened)
        page = html_report.render({"bundle": header, **documents}, files, total_files=total, problems=problems)
        render_only_s = timed(lambda: html_report.render({"bundle": header, **documents}, files,
                                                         total_files=total, problems=problems), args.rounds)
        out = tmp / "page.html"
        report_cli_s = timed(lambda: jcdiag("report", str(bundle), "--password-file", str(pw), "--out",
                                            str(out)), max(1, min(args.rounds, 3)))
        stats = documents["summary"]["log_stats"]
        result = {
            "agent_log_lines": lines, "error_lines": stats["error_lines"],
            "log_bytes": sum(p.stat().st_size for p in (root / "var/log").rglob("*") if p.is_file()),
            "bundle_bytes": bundle.stat().st_size, "collect_s": round(collect_s, 2),
            "render_ms": round(render_s * 1000, 1), "render_only_ms": round(render_only_s * 1000, 1),
            "report_cli_s": round(report_cli_s, 2),
            "page_bytes": len(page.encode()), "page_bytes_cli": out.stat().st_size,
            "timeline_bucket_hours": stats["timeline"]["bucket_hours"],
            "within_limits": render_s * 1000 < LIMIT_MS and out.stat().st_size < LIMIT_BYTES,
        }
    if args.json:
        print(json.dumps(result))
        return
    print(f"agent log lines      {result['agent_log_lines']:>12,}  ({result['error_lines']:,} error lines, "
          f"{result['log_bytes'] / 1e6:.0f} MB of logs, timeline per {result['timeline_bucket_hours']} h)")
    print(f"collect              {result['collect_s']:>12.2f} s   bundle {result['bundle_bytes'] / 1e6:.1f} MB")
    print(f"render (folder)      {result['render_ms']:>12.1f} ms  (limit {LIMIT_MS} ms)")
    print(f"render (documents)   {result['render_only_ms']:>12.1f} ms")
    print(f"jcdiag report (all)  {result['report_cli_s']:>12.2f} s   (start-up, checksum, decrypt, extract, render)")
    print(f"page size            {result['page_bytes_cli']:>12,} bytes (limit {LIMIT_BYTES:,})")
    print("within limits" if result["within_limits"] else "OVER THE LIMITS")


if __name__ == "__main__":
    main()
