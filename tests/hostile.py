"""Crafted bundles for the hostile-input tests: each builder writes one file the way an
attacker could (no jcdiag check stands in the way), using the project's own 7z writer
(collector/sevenzip.py) for the archives and py7zr's writer where ours cannot say it
(symlink entries)."""
from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Callable, Optional

from collector import sevenzip
from collector.ids import new_bundle_id

PASSWORD = "correct horse battery staple"


def payload(path: Path, files: dict[str, bytes], password: Optional[str] = PASSWORD) -> Path:
    """An encrypted 7z payload holding ``files`` under the given (unchecked) names."""
    with sevenzip.StreamingWriter(path, password) as writer:
        for name, data in files.items():
            writer.add_bytes(name, data)
    return path


def sparse_payload(path: Path, name: str, size: int, password: str = PASSWORD) -> Path:
    """A payload with one file of ``size`` zero bytes: a few KiB that expand to ``size``."""
    zeros = path.with_suffix(".zeros")
    with open(zeros, "wb") as fh:
        fh.truncate(size)
    with sevenzip.StreamingWriter(path, password) as writer:
        writer.add_file(zeros, name)
    zeros.unlink()
    return path


def symlink_payload(path: Path, link_target: str, password: str = PASSWORD) -> Path:
    """A payload (py7zr's writer, encrypted headers) with a symlink entry ``link``."""
    import py7zr

    link, summary = path.parent / "link.src", path.parent / "summary.src"
    os.symlink(link_target, link)
    summary.write_bytes(b"ok\n")
    filters = [{"id": py7zr.FILTER_LZMA2}, {"id": py7zr.FILTER_CRYPTO_AES256_SHA256}]
    with py7zr.SevenZipFile(path, "w", password=password, header_encryption=True, filters=filters) as z:
        z.write(link, "link")             # first: py7zr's writer trips on links after writestr
        z.write(summary, "SUMMARY.txt")
    link.unlink()
    summary.unlink()
    return path


def special_payload(path: Path, mode: int, password: str = PASSWORD) -> Path:
    """A payload whose one entry carries the POSIX file type ``mode`` (a device, a FIFO)."""
    real = sevenzip.attributes
    sevenzip.attributes = lambda m: 0x20 | 0x8000 | ((mode | 0o666) << 16)
    try:
        return payload(path, {"dev": b"x"}, password)
    finally:
        sevenzip.attributes = real


def renamed_payload(path: Path, placeholder: str, name: str) -> Path:
    """A payload (headers not encrypted) with ``placeholder`` renamed to ``name`` of the
    same length, CRCs fixed: how an attacker writes names our writer would not (``/abs``)."""
    assert len(placeholder) == len(name)
    payload(path, {placeholder: b"planted\n", "SUMMARY.txt": b"ok\n"}, password=None)
    data = bytearray(path.read_bytes())
    old, new = placeholder.encode("utf-16-le"), name.encode("utf-16-le")
    at = data.rindex(old)
    data[at:at + len(old)] = new
    next_offset, next_size, _ = struct.unpack("<QQI", data[12:32])
    start = 32 + next_offset
    data[28:32] = struct.pack("<I", zlib.crc32(data[start:start + next_size]))
    data[8:12] = struct.pack("<I", zlib.crc32(data[12:32]))
    path.write_bytes(bytes(data))
    return path


def header_for(payload_file: Path, **changes) -> dict:
    """The header ``seal`` would write for a password-protected ``payload_file``, then ``changes``."""
    data = payload_file.read_bytes()
    header = {
        "format": "jcdiag-bundle/1", "bundle_id": new_bundle_id(), "created": "2026-11-30T10:00:00+00:00",
        "tool": {"name": "jcdiag", "version": "1.0"}, "case_id": "42", "recipients": [],
        "password_protected": True,
        "payload": {"name": "payload.7z", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                    "compression": "LZMA2", "encryption": "7zAES-256, headers encrypted"},
    }
    header.update(changes)
    return header


def bundle(out: Path, header: dict | bytes, payload_file: Path,
           extra: tuple[tuple[str, bytes], ...] = ()) -> Path:
    """An outer archive (copy method, as ``seal`` writes) of ``header`` (a dict, or raw
    bytes for headers JSON cannot produce), ``payload_file`` and ``extra`` entries."""
    work = out.parent / (out.name + ".parts")
    work.mkdir()
    head = work / "bundle.json"
    head.write_bytes(header if isinstance(header, bytes) else json.dumps(header).encode())
    entries = [(head, "bundle.json"), (payload_file, "payload.7z")]
    for i, (name, data) in enumerate(extra):
        extra_file = work / f"extra{i}"
        extra_file.write_bytes(data)
        entries.append((extra_file, name))
    sevenzip.write_archive(entries, out, password=None, method=sevenzip.COPY)
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    return out


def simple(tmp: Path, files: Optional[dict[str, bytes]] = None,
           edit: Optional[Callable[[dict], None]] = None, name: str = "b.7z") -> Path:
    """A password-protected bundle of ``files`` whose header ``edit`` may change."""
    tmp.mkdir(parents=True, exist_ok=True)
    p = payload(tmp / (name + ".payload"), files or {"SUMMARY.txt": b"summary\n", "logs/a.log": b"x\n"})
    header = header_for(p)
    if edit:
        edit(header)
    return bundle(tmp / name, header, p)

