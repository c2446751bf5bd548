"""``jcdiag report`` and ``jcdiag open --report``: read an opened bundle's documents,
render the page (:mod:`collector.html_report`), write it whole or not at all.

The documents are hostile input: each is read only if it is a regular file (never
through a link) of at most ``MAX_DOCUMENT`` bytes and parses as JSON; one that is
missing, too big or broken becomes a line on the page, never an error, so an old
or damaged bundle still gets its report.  The page is written under a temporary
name beside its destination and renamed when complete.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Optional

from . import html_report
from .bundle import BundleError, read_header
from .unpack import Credentials, open_bundle
from .workspace import private_workspace

MAX_DOCUMENT = 32 * 1024 * 1024
MAX_WALK_DEPTH = 64
MAX_WALK_ENTRIES = 200_000
DOCUMENTS = {"summary": "summary.json", "manifest": "manifest.json", "report": "report.json",
             "redaction": "redaction.json"}


def read_document(folder: Path, name: str) -> tuple[Optional[object], Optional[str]]:
    """(parsed JSON, None) or (None, why it is not shown)."""
    try:
        fd = os.open(folder / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None, f"{name} is not in this bundle"
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror or exc})"
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None, f"{name} is not a regular file: not shown"
        data = fh.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        return None, f"{name} is larger than {MAX_DOCUMENT >> 20} MiB: not shown"
    try:
        return json.loads(data), None
    except (ValueError, RecursionError):
        return None, f"{name} is not valid JSON: not shown"


def read_documents(folder: Path) -> tuple[dict, list[str]]:
    """The documents of an extracted payload by role, and the problems met reading them."""
    documents, problems = {}, []
    for role, name in DOCUMENTS.items():
        documents[role], problem = read_document(folder, name)
        if problem:
            problems.append(problem)
    return documents, problems


def list_files(folder: Path, limit: int = html_report.MAX_FILES) -> tuple[list[str], int]:
    """Up to ``limit`` regular files under ``folder`` (relative POSIX names, sorted by
    folder), and how many there are in all.  Iterative, links never followed, depth
    and entries capped."""
    names: list[str] = []
    total = seen = 0
    stack: list[tuple[Path, tuple[str, ...]]] = [(folder, ())]
    while stack and seen < MAX_WALK_ENTRIES:
        path, rel = stack.pop()
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if entry.is_dir(follow_symlinks=False):
                if len(rel) < MAX_WALK_DEPTH:
                    stack.append((Path(entry.path), rel + (entry.name,)))
            elif entry.is_file(follow_symlinks=False):
                total += 1
                if len(names) < limit:
                    names.append("/".join(rel + (entry.name,)))
    return sorted(names), total


def write_page(text: str, out: Path, replace: bool = True) -> Path:
    """``text`` to ``out`` (mode 0644) under a temporary name, renamed when complete;
    with ``replace`` False an existing ``out`` is kept and BundleError raised."""
    out = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        if replace:
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)
            except FileExistsError:
                raise BundleError(f"{out} already exists: not overwritten") from None
            os.unlink(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def render_folder(folder: Path, header: dict, file_base: str = "") -> str:
    """The page for an extracted payload in ``folder``; links are ``file_base``/name."""
    documents, problems = read_documents(folder)
    files, total = list_files(folder)
    return html_report.render({"bundle": header, **documents}, files, file_base=file_base,
                              total_files=total, problems=problems)


def report_for_opened(folder: Path, header: dict) -> Path:
    """``jcdiag open --report``: ``<folder>/<BUNDLE-ID>.html``, links relative to the folder."""
    return write_page(render_folder(folder, header), folder / f"{_bundle_id(header)}.html", replace=False)


def report_for_bundle(bundle: Path | str, creds: Credentials, out: Optional[Path] = None) -> Path:
    """``jcdiag report``: open the bundle into a private temporary folder (removed
    afterwards), render, write ``out`` (default ``<BUNDLE-ID>.html`` beside the
    bundle).  Links point into ``<BUNDLE-ID>/`` beside the page, where ``jcdiag
    open BUNDLE --to`` that folder extracts the files."""
    bundle = Path(bundle)
    header = read_header(bundle)
    bundle_id = _bundle_id(header)
    out = Path(out) if out is not None else bundle.parent / f"{bundle_id}.html"
    if out.is_dir():
        raise BundleError(f"{out} is a folder: give --out FILE")
    if not out.parent.is_dir():
        raise BundleError(f"{out.parent} is not a folder: give --out FILE in an existing folder")
    with private_workspace() as work:
        opened = open_bundle(bundle, creds, work / "payload")
        page = render_folder(opened.target, opened.header, file_base=bundle_id)
    return write_page(page, out)


def _bundle_id(header: dict) -> str:
    """The header's bundle ID, which names files here (read_header validated it)."""
    return header["bundle_id"]
