#!/usr/bin/env python3
"""Build the single-file jcdiag executable for this OS and architecture with PyInstaller.

    pip install -e '.[build]'
    python scripts/build_exe.py                 # -> dist/jcdiag-<os>-<arch>[.exe], then a smoke test

Admins will not install Python on a broken domain controller; MDM pushes one file.
PyInstaller does not cross-compile, so each executable is built on its own OS:

* Linux:   on the oldest glibc the fleet runs (the binary needs a glibc at least as new as
           the builder's), e.g. in a ``python:3.11-bullseye`` container.
* macOS:   on macOS, once per architecture (``arm64`` on Apple silicon, ``x86_64`` on Intel,
           or a universal2 Python with ``--target-arch universal2``); sign and notarise the
           result before MDM distribution (``codesign``, ``notarytool``).
* Windows: on Windows with the python.org installer; sign it with ``signtool`` (unsigned
           executables in ``C:\\Windows\\Temp`` are what EDR products quarantine).

What goes in: the ``collector``, ``platforms`` and ``intake`` packages (every submodule:
the CLI imports most of them inside commands, and ``platforms`` picks its OS module
at run time), the data files in ``collector/data`` (lifecycle table, its licence,
redaction rules), pylzma (7-Zip's LZMA encoder), ``collector._logscan`` (the log
statistics' error table in C) and ``collector._literals`` (redaction's trigger words
found in C), both built by ``pip install -e .`` from collector/*.c (setup.py): the
build refuses to go on without any of them, since the executable would then fall back
to slower ways, py7zr with its
codecs and cryptography.  What stays out: test and
development packages, and boto3 (the S3 storage of ``jcdiag intake serve`` is for servers,
which install with pip).

The smoke test runs the built binary: ``--version`` and ``check`` on a fixture root
(``--root tests/fixtures/linux/ubuntu2204 --platform linux``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "collector" / "data"
SMOKE_ROOT = REPO / "tests" / "fixtures" / "linux" / "ubuntu2204"

#: Packages whose every module is bundled (lazily imported inside commands or chosen at run time).
COLLECT_SUBMODULES = ("collector", "platforms", "intake")
#: Imported by name at run time or behind try/except, so analysis may miss them.
HIDDEN_IMPORTS = (
    "platforms.linux", "platforms.macos", "platforms.windows", "platforms.winregistry",
    "pylzma", "collector._logscan", "collector._literals", "py7zr.compressor", "bcj", "pyppmd", "inflate64", "Cryptodome.Cipher.AES", "backports.zstd",
    "cryptography.hazmat.primitives.asymmetric.rsa", "cryptography.hazmat.primitives.asymmetric.padding",
    "cryptography.hazmat.primitives.serialization", "cryptography.x509",
)
#: Installed in a developer's venv but never needed by the executable.
EXCLUDES = ("tkinter", "pytest", "_pytest", "hypothesis", "yaml", "boto3", "botocore", "s3transfer",
            "aiohttp", "tusclient", "tinydb", "setuptools", "pip", "IPython", "numpy")


def target_name() -> str:
    """``jcdiag-<os>-<arch>[.exe]`` with the names admins see elsewhere (x86_64, arm64)."""
    os_name = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"jcdiag-{os_name}-{arch}" + (".exe" if os_name == "windows" else "")


def pyinstaller_args(name: str, entry: Path, dist: Path, work: Path) -> list[str]:
    args = ["--onefile", "--noconfirm", "--log-level", "WARN", "--name", Path(name).stem,
            "--distpath", str(dist), "--workpath", str(work), "--specpath", str(work),
            "--paths", str(REPO)]
    for item in sorted(DATA.iterdir()):
        if item.is_file() and (item.suffix in (".json", ".txt") or item.name.startswith("LICENSE")):
            args += ["--add-data", f"{item}{os.pathsep}collector/data"]
    for package in COLLECT_SUBMODULES:
        args += ["--collect-submodules", package]
    for module in HIDDEN_IMPORTS:
        args += ["--hidden-import", module]
    for module in EXCLUDES:
        args += ["--exclude-module", module]
    if sys.platform.startswith("linux"):
        args.append("--strip")
    return args + [str(entry)]


ENTRY = """\
# PyInstaller entry point: the console script, named jcdiag whatever the file is called.
from collector.cli import main

main(prog_name="jcdiag")
"""


def build(dist: Path, work: Path) -> tuple[Path, float]:
    """Build; the executable's path and the seconds it took."""
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        sys.exit("PyInstaller is not installed: pip install -e '.[build]'")
    try:
        import pylzma  # noqa: F401
    except ImportError:
        sys.exit("pylzma is not installed (the executable compresses with 7-Zip's encoder): "
                 "pip install -e '.[build]' (it builds with the platform's C compiler)")
    for module, what in (("_logscan", "log statistics"), ("_literals", "redaction's word search")):
        try:
            importlib.import_module(f"collector.{module}")
        except ImportError:
            sys.exit(f"collector.{module} is not built (the executable's {what} runs in C): pip install -e . "
                     f"with the platform's C compiler (setup.py builds collector/{module}.c)")
    work.mkdir(parents=True, exist_ok=True)
    entry = work / "jcdiag_entry.py"
    entry.write_text(ENTRY, encoding="utf-8")
    name = target_name()
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "PyInstaller", *pyinstaller_args(name, entry, dist, work)],
                   check=True, cwd=REPO)
    elapsed = time.monotonic() - started
    built = dist / (Path(name).stem + (".exe" if name.endswith(".exe") else ""))
    if not built.exists():
        sys.exit(f"PyInstaller finished but {built} is missing")
    return built, elapsed


def run(exe: Path | list[str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    argv = [str(exe)] if isinstance(exe, Path) else list(exe)
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=REPO)


def smoke(exe: Path) -> dict:
    """``--version`` and ``check`` on a fixture root; raises SystemExit on any failure."""
    from collector import __version__

    version = run(exe, "--version")
    if version.returncode != 0 or __version__ not in version.stdout:
        sys.exit(f"smoke test: {exe} --version failed ({version.returncode}): {version.stdout}{version.stderr}")
    check = run(exe, "check", "--root", str(SMOKE_ROOT), "--platform", "linux", "--json")
    try:
        verdict = json.loads(check.stdout)["lifecycle"]["status"]
    except (ValueError, KeyError):
        sys.exit(f"smoke test: check --json failed ({check.returncode}): {check.stdout}{check.stderr}")
    if check.returncode not in (0, 3):
        sys.exit(f"smoke test: check exited {check.returncode}: {check.stderr}")
    return {"version": version.stdout.strip(), "check_exit": check.returncode, "lifecycle": verdict}


def median_seconds(argv: list[str], runs: int = 5) -> float:
    """Median wall time of ``argv`` over ``runs`` runs (after one warm-up run)."""
    run(argv)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = run(argv)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise RuntimeError(f"{argv} exited {result.returncode}: {result.stderr}")
    return statistics.median(times)


def startup_times(exe: Path, runs: int = 5) -> dict:
    """``--version`` of the executable next to ``python -m collector --version`` (median seconds)."""
    return {"exe_version_s": round(median_seconds([str(exe), "--version"], runs), 3),
            "python_m_version_s": round(median_seconds([sys.executable, "-m", "collector", "--version"], runs), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="where the executable goes (dist/)")
    parser.add_argument("--work", type=Path, default=None,
                        help="PyInstaller's build folder (default: a temporary one, removed)")
    parser.add_argument("--no-smoke", action="store_true", help="skip running the built executable")
    parser.add_argument("--measure", action="store_true", help="also time --version (median of 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="jcdiag-pyinstaller-"))
    try:
        exe, build_s = build(args.dist.resolve(), work.resolve())
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report = {"executable": str(exe), "size_bytes": exe.stat().st_size, "build_s": round(build_s, 1)}
    if not args.no_smoke:
        report["smoke"] = smoke(exe)
    if args.measure:
        report.update(startup_times(exe))
    if args.json:
        print(json.dumps(report))
    else:
        print(f"built {exe} ({report['size_bytes'] / 1048576:.1f} MiB) in {build_s:.0f} s")
        if "smoke" in report:
            print(f"smoke test ok: {report['smoke']['version']}; check on {SMOKE_ROOT.name}: "
                  f"{report['smoke']['lifecycle']} (exit {report['smoke']['check_exit']})")
        if args.measure:
            print(f"startup (--version, median of 5): executable {report['exe_version_s']} s, "
                  f"python -m collector {report['python_m_version_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
