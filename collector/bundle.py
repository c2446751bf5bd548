"""Bundle format v1: an outer 7z (copy method) holding ``bundle.json`` and ``payload.7z``.

``bundle.json`` is the public header: anyone (the intake, ``jcdiag inspect``) can
read it without a key.  ``payload.7z`` is LZMA2 + 7zAES-256 with encrypted headers,
the two filters stock 7-Zip opens; its password is the per-bundle secret from
``collector.envelope`` (or the admin's password).  7zAES has no MAC, so the header
carries the payload's SHA-256 and :func:`collector.unpack.open_bundle` checks it
before decrypting.  Every read of the header goes through :func:`read_header` and
so through the one schema in :mod:`collector.header`.

Both archives are written under temporary names and renamed when complete, so a
failed run never leaves a file that looks like a whole bundle.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import __version__, sevenzip
from .header import FORMAT, HEADER_LIMIT, PAYLOAD_NAME, HeaderError, parse_header, shown

HEADER_NAME = "bundle.json"
#: What the public header says of the payload's compression (see collector.sevenzip).
COMPRESSION = "LZMA2 (fast, 128 KiB dictionary; already-compressed data stored)"
_HASH_CHUNK = 1024 * 1024
MAX_ARCHIVE_ENTRIES = 100_000            # entries of a payload that `open` extracts
MAX_ARCHIVE_HEADER = 64 * 1024 * 1024    # decoded 7z header: 100,000 names and their sizes


class BundleError(Exception):
    """A bundle that cannot be written or opened; the message names the file and the fix.

    ``kind`` is a stable word for scripts (``--json`` prints it as ``error_kind``):
    not_found, not_a_bundle, header_invalid, unsupported_format, payload_mismatch,
    payload_corrupt, wrong_password, needs_password, needs_key, unsafe_entry,
    extract_cap_exceeded, target_not_empty, io_error.  ``details`` are extra JSON fields.
    """

    def __init__(self, message: str, kind: str = "bundle_error", **details):
        super().__init__(message)
        self.kind = kind
        self.details = details


@dataclass(frozen=True)
class WrittenBundle:
    path: Path
    sha256: str
    size: int
    header: dict


def sha256_file(path: Path | str) -> tuple[str, int]:
    """Hex SHA-256 and size of a file, read in bounded chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def start_payload(work_dir: Path, password: str) -> sevenzip.StreamingWriter:
    """An open payload in ``work_dir`` that takes files as they are finished.

    A background writer (:mod:`collector.sevenzip`: LZMA2 blocks on both cores, Copy
    for data that is already compressed, 7zAES-256 with encrypted headers), so
    compressing one file overlaps gathering and redacting the next: ``add_file``
    only queues.  Close it, then :func:`seal`; abort it if the run fails.  Memory
    depends on the writer's block size, not on the size of the logs.
    """
    if not password:
        raise BundleError("the payload needs a password: jcdiag never writes it unencrypted")
    return sevenzip.StreamingWriter(work_dir / PAYLOAD_NAME, password, background=True)


def seal(payload: Path, out_dir: Path, bundle_id: str, header: dict) -> WrittenBundle:
    """Wrap a closed payload into ``<out_dir>/<bundle_id>.7z`` with its public header.

    ``header`` holds the public fields (case, recipients...); format, bundle ID,
    creation time, tool and payload digest are filled in here.  The payload is
    removed afterwards, whether sealing worked or not.
    """
    try:
        digest, crc, size = _sha256_and_crc32(payload)
        full_header = {
            "format": FORMAT,
            "bundle_id": bundle_id,
            "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            "tool": {"name": "jcdiag", "version": __version__},
            **header,
            "payload": {"name": PAYLOAD_NAME, "sha256": digest, "size": size,
                        "compression": COMPRESSION, "encryption": "7zAES-256, headers encrypted"},
        }
        header_bytes = (json.dumps(full_header, indent=2, sort_keys=False) + "\n").encode("utf-8")
        now = time.time_ns()
        files = [sevenzip.StoredFile(HEADER_NAME, len(header_bytes), zlib.crc32(header_bytes), now,
                                     data=header_bytes),
                 sevenzip.StoredFile(PAYLOAD_NAME, size, crc, payload.stat().st_mtime_ns, path=payload)]
        final = out_dir / f"{bundle_id}.7z"
        fd, tmp_name = tempfile.mkstemp(prefix=f".{bundle_id}.", suffix=".partial", dir=out_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                bundle_digest, bundle_size = sevenzip.write_stored(fh, files)
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        payload.unlink(missing_ok=True)
    return WrittenBundle(final, bundle_digest, bundle_size, full_header)


def _sha256_and_crc32(path: Path) -> tuple[str, int, int]:
    """SHA-256 (hex), CRC-32 and size of a file in one read: the bundle's header needs the
    one, the outer archive the other (the archive then needs no read of its own)."""
    digest, crc, size = hashlib.sha256(), 0, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return digest.hexdigest(), crc, size


def _py7zr():
    """py7zr, imported when a bundle is read: writing never needs it, and it costs a
    collect some 15 MB of memory and 0.15 s of start-up.

    Its parser limits are lowered to what a bundle can hold: py7zr allows 8 million
    entries (a 5 KB header listing them took 70 s and 3 GB to refuse); a bundle's
    payload holds at most :data:`MAX_ARCHIVE_ENTRIES`."""
    import py7zr
    import py7zr.archiveinfo
    import py7zr.io
    info = py7zr.archiveinfo
    info.MAX_NUMFILES = min(info.MAX_NUMFILES, MAX_ARCHIVE_ENTRIES)
    info.MAX_SUBSTREAMS = min(info.MAX_SUBSTREAMS, MAX_ARCHIVE_ENTRIES)
    info.MAX_HEADER_SIZE = min(info.MAX_HEADER_SIZE, MAX_ARCHIVE_HEADER)
    return py7zr


def open_outer(path: Path):
    """The outer archive, opened for reading (py7zr), or BundleError ``not_a_bundle``."""
    py7zr = _py7zr()
    try:
        return py7zr.SevenZipFile(path, "r")
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file", "not_found") from None
    except IsADirectoryError:
        raise BundleError(f"{path}: is a folder, not a bundle file", "not_a_bundle") from None
    except PermissionError:
        raise BundleError(f"{path}: permission denied", "io_error") from None
    except Exception as exc:  # py7zr raises many types on damaged input
        raise BundleError(f"{path}: not a jcdiag bundle, or damaged/truncated ({type(exc).__name__})",
                          "not_a_bundle") from None


def outer_entries(outer, path: Path) -> dict:
    """``{name: entry}`` of the outer archive, which must hold exactly ``bundle.json`` and
    ``payload.7z``, once each, as regular files.

    Anything else is refused rather than ignored: an extra or repeated entry means
    the file was not made by ``seal``, and two readers (7-Zip, py7zr) could pick
    different copies of a repeated name.
    """
    entries: dict = {}
    for entry in outer.files:
        name = entry.filename
        if name not in (HEADER_NAME, PAYLOAD_NAME):
            raise BundleError(f"{path}: unexpected entry {shown(name)} in the outer archive: not a "
                              f"jcdiag bundle (it holds only {HEADER_NAME} and {PAYLOAD_NAME})",
                              "not_a_bundle")
        if name in entries:
            raise BundleError(f"{path}: {name} appears twice in the outer archive: not a jcdiag bundle",
                              "not_a_bundle")
        if entry.is_directory or entry.is_symlink or entry.is_junction or entry.is_socket \
                or not entry.is_file:
            raise BundleError(f"{path}: {name} is not a regular file in the outer archive", "not_a_bundle")
        entries[name] = entry
    for name in (HEADER_NAME, PAYLOAD_NAME):
        if name not in entries:
            raise BundleError(f"{path}: has no {name}: not a jcdiag bundle", "not_a_bundle")
    return entries


def read_header(path: Path | str) -> dict:
    """The public header of a bundle, validated by :mod:`collector.header`; no key needed.

    The outer archive must hold exactly ``bundle.json`` and ``payload.7z``; the
    header's declared size is checked against :data:`HEADER_LIMIT` before a byte of
    it is read, and the read itself is capped too (a declared size can lie).
    """
    path = Path(path)
    with open_outer(path) as outer:
        entry = outer_entries(outer, path)[HEADER_NAME]
        if entry.uncompressed > HEADER_LIMIT:
            raise BundleError(f"{path}: {HEADER_NAME} is {entry.uncompressed} bytes; a header has at "
                              f"most {HEADER_LIMIT}: not a jcdiag bundle", "header_invalid",
                              field="")
        try:
            factory = _py7zr().io.BytesIOFactory(HEADER_LIMIT + 1)
            outer.extract(targets=[HEADER_NAME], factory=factory)
            data = factory.get(HEADER_NAME).read(HEADER_LIMIT + 1)
        except Exception as exc:  # py7zr raises many types on damaged input
            raise BundleError(f"{path}: damaged or truncated bundle ({type(exc).__name__})",
                              "not_a_bundle") from None
    try:
        return parse_header(data)
    except HeaderError as exc:
        what = "unsupported bundle format" if exc.kind == "unsupported_format" else "invalid header"
        raise BundleError(f"{path}: {what}: {HEADER_NAME} {exc}", exc.kind, field=exc.field) from None
