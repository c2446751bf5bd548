"""Benchmark: ``jcdiag collect`` against ``7z -mx1 -mmt2 -mhe=on`` and ``tar czf`` (issue 7).

For each size (default 50M, 500M and 2G of logs) and each error mix (``--errors``,
default 5 and 35: that percent of the agent's log lines are errors, as on a quiet and
on a troubled agent; repeated messages with fresh ids, Go stack traces and ``panic:``
blocks) it generates a realistic agent host (``scripts/genhost.py``), then runs, side
by side, alternating, ``--rounds`` times each (the median is reported):

* ``jcdiag collect``: the full pipeline through the real CLI (gather, redact,
  compress, encrypt, seal to a fresh RSA key), with size caps large enough that
  nothing is truncated;
* ``7z a -t7z -mx1 -mmt2 -mhe=on -p...`` on the same files (the host's ``var/log``
  and ``opt/jc``): the best C++ tool for the same format;
* ``tar czf`` on the same files: what JumpCloud's own scripts produce, unencrypted;
* ``writer``: jcdiag's 7z writer alone (``collector.sevenzip``) on the same files, to
  tell the compressor's share from the rest of the pipeline (not a target).

jcdiag runs with ``--normal-priority``: off a terminal it would lower its own priority
(nice 10), which is right on a fleet but unfair next to 7z and tar at normal priority.

Each command runs as a child process; wall time is measured around it, CPU time
(user + sys) and peak RSS are that child's resource usage (children of the child
included, e.g. tar's gzip), read by ``/usr/bin/time`` (else ``os.wait4``).  The page cache is warmed before
each size so every tool reads from memory.  Prints a table with the ratios the issue
sets targets for, or one JSON object with ``--json``.

    python scripts/bench.py --sizes 200M,500M,2G --errors 5,35 --rounds 3
    python scripts/bench.py --sizes 500M --errors 35 --tools jcdiag,7z     # quicker: the targets only
    python scripts/bench.py --hosts /var/tmp/jcdiag-hosts --keep-hosts   # reuse hosts later
    python scripts/bench.py --sizes 500M --rounds 1 --profile /tmp/collect.prof
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genhost import make_host  # noqa: E402
from collector.config import parse_size  # noqa: E402
from collector.lzma2enc import encoder_name  # noqa: E402

PASSWORD = "bench-password-of-43-characters-xxxxxxxxxx"
INPUT_DIRS = ("var/log", "opt/jc")
TOOLS = ("jcdiag", "7z", "tar.gz", "writer")
# The payload writer alone (collector.sevenzip, no gather/redaction) on the same files:
# separates the compressor from the rest of the pipeline.  Not one of the targets.
_WRITER = ("import os, sys; from pathlib import Path; from collector.sevenzip import write_archive; "
           "files = [(p, p.as_posix()) for d in sys.argv[2:] for p in sorted(Path(d).rglob('*')) if p.is_file()]; "
           "write_archive(files, Path(sys.argv[1]), os.environ['BENCH_PASSWORD'])")
TARGETS = {"wall_vs_7z": 1.5, "size_vs_7z": 1.05, "size_vs_targz": 0.8, "rss_mib": 120.0,
           "rss_growth": 0.10}
_CHUNK = 1 << 20


@dataclass
class Run:
    wall: float          # seconds
    cpu: float           # user + sys seconds of the child and its children
    rss_mib: float       # peak resident set size of the child
    size: int            # output bytes
    exit_code: int


def measure(argv: list[str], cwd: Path, output: Path) -> Run:
    """Runs ``argv`` as a child; wall time around it, CPU and peak RSS from wait4.

    A forked child inherits its parent's peak RSS (``ru_maxrss`` survives exec), so
    the command is started through ``/usr/bin/time`` when it exists: time is a tiny
    C program and reports its own child's wait4 figures.  Otherwise this process's
    wait4 is used and RSS is at least the size of this Python process.
    """
    timer = Path("/usr/bin/time")
    with tempfile.NamedTemporaryFile("r", prefix="jcdiag-bench-time-") as report:
        full = [str(timer), "-o", report.name, "-f", "%U %S %M", *argv] if timer.exists() else argv
        started = time.perf_counter()
        env = {**os.environ, "BENCH_PASSWORD": PASSWORD,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        child = subprocess.Popen(full, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        assert child.stderr is not None
        err = child.stderr.read()                   # drained so the child never blocks on it
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        if timer.exists():
            lines = report.read().strip().splitlines()
            if lines and lines[0].startswith("Command exited with non-zero status"):
                lines = lines[1:]
            user, system, rss_kb = lines[-1].split()
            cpu, rss_mib = float(user) + float(system), int(rss_kb) / 1024
        else:
            cpu, rss_mib = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    if code not in (0, 3):                      # 3: bundle made, some collectors failed
        raise SystemExit(f"{' '.join(argv[:4])}... failed with exit {code}:\n"
                         f"{err.decode(errors='replace')[-2000:]}")
    return Run(wall, cpu, rss_mib, _output_size(output), code)


def _output_size(output: Path) -> int:
    if output.is_dir():
        return sum(p.stat().st_size for p in output.glob("*.7z"))
    return output.stat().st_size if output.exists() else 0


def commands(tool: str, host: Path, out: Path, public_key: Path) -> tuple[list[str], Path, Path]:
    """``(argv, cwd, output)`` for one tool on one host."""
    if tool == "jcdiag":
        out.mkdir()
        return ([sys.executable, "-m", "collector", "collect", "--root", str(host), "--platform", "linux",
                 "--recipient", str(public_key), "--output", str(out), "--json", "--yes",
                 "--max-bundle-size", "8G", "--max-file-size", "4G", "--normal-priority"], REPO, out)
    if tool == "7z":
        target = out.with_suffix(".7z")
        return (["7z", "a", "-t7z", "-mx1", "-mmt2", "-mhe=on", f"-p{PASSWORD}", str(target),
                 *INPUT_DIRS], host, target)
    if tool == "writer":
        target = out.with_suffix(".writer.7z")
        return ([sys.executable, "-c", _WRITER, str(target), *INPUT_DIRS], host, target)
    target = out.with_suffix(".tar.gz")
    return (["tar", "czf", str(target), *INPUT_DIRS], host, target)


def input_bytes(host: Path) -> int:
    return sum(p.stat().st_size for d in INPUT_DIRS for p in (host / d).rglob("*") if p.is_file())


def warm_cache(host: Path) -> None:
    """Reads every input once, so no tool pays for the first cold read."""
    for d in INPUT_DIRS:
        for path in (host / d).rglob("*"):
            if path.is_file():
                with open(path, "rb") as fh:
                    while fh.read(_CHUNK):
                        pass


def compile_sources() -> None:
    """Byte-compiles jcdiag's own packages, as ``pip install`` and the executable do.

    An editable checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (set on some machines)
    compiles every module from source at each start: about 0.35 s that no installed
    jcdiag pays, a tenth of 7-Zip's whole time on 200 MB.  py_compile writes the
    caches whatever that variable says; Python still reads them."""
    for package in ("collector", "platforms", "intake"):
        compileall.compile_dir(str(REPO / package), quiet=1)


def host_dir(hosts: Path, label: str, errors: float, seed: int) -> Path:
    return hosts / f"host-{label}-e{errors:g}-seed{seed}"


def ensure_host(hosts: Path, label: str, size: int, seed: int, errors: float) -> Path:
    """The generated host for ``label`` with ``errors`` percent error lines in the agent's
    logs, reused when a previous run left it complete."""
    host = host_dir(hosts, label, errors, seed)
    done = host / ".genhost-complete"
    if not done.exists():
        shutil.rmtree(host, ignore_errors=True)
        print(f"generating a {label} host ({errors:g}% error lines) under {host} ...", file=sys.stderr,
              flush=True)
        make_host(host, size, seed=seed, errors=errors / 100)
        done.write_text(f"{size}\n")
    return host


def bench_size(label: str, host: Path, rounds: int, public_key: Path, scratch: Path,
               tools: tuple[str, ...] = TOOLS) -> dict:
    warm_cache(host)
    runs: dict[str, list[Run]] = {tool: [] for tool in tools}
    load_before = os.getloadavg()[0]
    for round_no in range(rounds):
        order = tools[round_no % len(tools):] + tools[:round_no % len(tools)]   # rotate: spread noise
        for tool in order:
            out = scratch / f"{label.replace('/', '-')}-{tool}-{round_no}"
            argv, cwd, output = commands(tool, host, out, public_key)
            run = measure(argv, cwd, output)
            runs[tool].append(run)
            print(f"  {label} round {round_no + 1} {tool:7s} wall {run.wall:7.2f}s cpu {run.cpu:7.2f}s "
                  f"rss {run.rss_mib:6.1f} MiB size {run.size / 1e6:8.2f} MB", file=sys.stderr, flush=True)
            shutil.rmtree(output, ignore_errors=True) if output.is_dir() else output.unlink(missing_ok=True)
    median = {tool: {k: statistics.median(getattr(r, k) for r in rs) for k in ("wall", "cpu", "rss_mib", "size")}
              for tool, rs in runs.items()}
    j, z = median["jcdiag"], median["7z"]
    # the same round's runs share the machine's state: the per-round ratio is what counts on a
    # shared host (the measure); its spread over rounds says how noisy the run was
    per_round = [a.wall / b.wall for a, b in zip(runs["jcdiag"], runs["7z"])]
    ratios = {"wall_vs_7z": statistics.median(per_round), "wall_vs_7z_rounds": per_round,
              "wall_vs_7z_of_medians": j["wall"] / z["wall"], "cpu_vs_7z": j["cpu"] / z["cpu"],
              "size_vs_7z": j["size"] / z["size"]}
    if "tar.gz" in median:
        ratios["size_vs_targz"] = j["size"] / median["tar.gz"]["size"]
    if "writer" in median:
        w = median["writer"]
        ratios.update(writer_wall_vs_7z=w["wall"] / z["wall"], writer_cpu_vs_7z=w["cpu"] / z["cpu"],
                      writer_size_vs_7z=w["size"] / z["size"])
    return {
        "input_bytes": input_bytes(host),
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "runs": {tool: [asdict(r) for r in rs] for tool, rs in runs.items()},
        "median": median,
        "ratios": ratios,
    }


def verdicts(results: dict) -> dict:
    """Each target of issues 7 and 16 with the measured value and whether it is met.
    ``results`` is keyed ``(size label, error percent)``."""
    out: dict = {}
    for (label, errors), res in results.items():
        r, name = res["ratios"], f"{label} {errors:g}% err"
        out[f"{name} wall jcdiag/7z"] = (r["wall_vs_7z"], TARGETS["wall_vs_7z"])
        out[f"{name} size jcdiag/7z"] = (r["size_vs_7z"], TARGETS["size_vs_7z"])
        if "size_vs_targz" in r:
            out[f"{name} size jcdiag/tar.gz"] = (r["size_vs_targz"], TARGETS["size_vs_targz"])
        out[f"{name} peak RSS MiB"] = (res["median"]["jcdiag"]["rss_mib"], TARGETS["rss_mib"])
    for errors in sorted({e for _, e in results}):
        sizes = sorted((label for label, e in results if e == errors), key=parse_size)
        if len(sizes) >= 2:
            small = results[(sizes[0], errors)]["median"]["jcdiag"]["rss_mib"]
            big = results[(sizes[-1], errors)]["median"]["jcdiag"]["rss_mib"]
            out[f"RSS growth {sizes[0]}->{sizes[-1]} {errors:g}% err"] = (big / small - 1, TARGETS["rss_growth"])
    return {name: {"value": value, "target": f"<= {limit}", "met": value <= limit}
            for name, (value, limit) in out.items()}


def print_table(results: dict) -> None:
    print(f"{'size':>6} {'err%':>5} {'tool':8} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13} {'output MB':>10}")
    for (label, errors), res in results.items():
        for tool, m in res["median"].items():
            print(f"{label:>6} {errors:5g} {tool:8} {m['wall']:8.2f} {m['cpu']:8.2f} {m['rss_mib']:13.1f} "
                  f"{m['size'] / 1e6:10.2f}")
        r = res["ratios"]
        rounds = " ".join(f"{x:.2f}" for x in r["wall_vs_7z_rounds"])
        print(f"{'':>12} wall jcdiag/7z {r['wall_vs_7z']:.2f} (median of rounds {rounds}; of medians "
              f"{r['wall_vs_7z_of_medians']:.2f})  cpu {r['cpu_vs_7z']:.2f}  size jcdiag/7z "
              f"{r['size_vs_7z']:.3f}" + (f"  size jcdiag/tar.gz {r['size_vs_targz']:.3f}" if "size_vs_targz" in r
                                         else "")
              + f"  (input {res['input_bytes'] / 1e6:.0f} MB, load {res['load_average']['before']:.2f}"
              f" -> {res['load_average']['after']:.2f})")
        if "writer_wall_vs_7z" in r:
            print(f"{'':>12} writer alone vs 7z: wall {r['writer_wall_vs_7z']:.2f}  cpu {r['writer_cpu_vs_7z']:.2f}"
                  f"  size {r['writer_size_vs_7z']:.3f}")
    print()
    for name, v in verdicts(results).items():
        print(f"{'met ' if v['met'] else 'MISS'}  {name:40s} {v['value']:8.3f}  target {v['target']}")


def profile_collect(host: Path, public_key: Path, scratch: Path, out_file: Path) -> None:
    """One collect under cProfile (main thread only: gather, redaction, log statistics;
    the 7z writer's threads are not seen, py-spy --threads shows them); prints the 25 most
    expensive functions."""
    out = scratch / "profiled"
    argv, cwd, _ = commands("jcdiag", host, out, public_key)
    argv = [argv[0], "-m", "cProfile", "-o", str(out_file)] + argv[1:]
    subprocess.run(argv, cwd=cwd, check=False, stdout=subprocess.DEVNULL)
    import pstats
    pstats.Stats(str(out_file), stream=sys.stderr).sort_stats("tottime").print_stats(25)
    shutil.rmtree(out, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200M,500M,2G", help="comma-separated host sizes (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="runs per tool and size; the median is kept")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--hosts", type=Path, help="folder for generated hosts (reused when complete)")
    ap.add_argument("--keep-hosts", action="store_true", help="do not delete generated hosts")
    ap.add_argument("--errors", default="5,35",
                    help="comma-separated percents of error lines in the agent's logs (default: %(default)s)")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="comma-separated tools to run, jcdiag and 7z always (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", type=Path, help="also profile one collect of the last size and mix into this file")
    args = ap.parse_args(argv)
    if shutil.which("7z") is None or shutil.which("tar") is None:
        ap.error("7z and tar must be on PATH")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    labels = [s.strip() for s in args.sizes.split(",") if s.strip()]
    try:
        mixes = [float(e) for e in args.errors.split(",") if e.strip()]
    except ValueError:
        ap.error(f"--errors {args.errors!r}: give percents such as 5,35")
    if not mixes or not all(0 <= e <= 90 for e in mixes):
        ap.error("--errors: each percent must be between 0 and 90")
    tools = tuple(t for t in TOOLS if t in {"jcdiag", "7z", *args.tools.split(",")})
    compile_sources()
    from collector.envelope import keygen

    scratch = Path(tempfile.mkdtemp(prefix="jcdiag-bench-"))
    hosts = args.hosts or scratch / "hosts"
    hosts.mkdir(parents=True, exist_ok=True)
    try:
        _, public_key = keygen(scratch / "support")
        results = {}
        for label in labels:
            for errors in mixes:
                host = ensure_host(hosts, label, parse_size(label), args.seed, errors)
                results[(label, errors)] = bench_size(f"{label}/{errors:g}%", host, args.rounds, public_key,
                                                      scratch, tools)
                if not args.hosts:
                    shutil.rmtree(host, ignore_errors=True)     # 2G hosts are big: one at a time
        if args.profile:
            profile_collect(ensure_host(hosts, labels[-1], parse_size(labels[-1]), args.seed, mixes[-1]),
                            public_key, scratch, args.profile)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if args.hosts and not args.keep_hosts:
            for label in labels:
                for errors in mixes:
                    shutil.rmtree(host_dir(args.hosts, label, errors, args.seed), ignore_errors=True)
    if args.json:
        print(json.dumps({"rounds": args.rounds, "cpus": os.cpu_count(), "targets": TARGETS,
                          "encoder": encoder_name(),
                          "results": {f"{label} {errors:g}%": res for (label, errors), res in results.items()},
                          "verdicts": verdicts(results)}, indent=2))
    else:
        print(f"LZMA2 encoder: {encoder_name()} (JCDIAG_LZMA_ENCODER=liblzma for the fallback)")
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
