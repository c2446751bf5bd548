"""Bundle format v1: an outer 7z (copy method) holding ``bundle.json`` and ``payload.7z``.

``bundle.json`` is the public header: anyone (the intake, ``jcdiag inspect``) can
read it without a key.  ``payload.7z`` is LZMA2 + 7zAES-256 with encrypted headers,
the two filters stock 7-Zip opens; its password is the per-bundle secret from
``collector.envelope`` (or the admin's password).  7zAES has no MAC, so the header
carries the payload's SHA-256 and :func:`open_bundle` checks it before extracting.

Both archives are written under temporary names and renamed when complete, so a
failed run never leaves a file that looks like a whole bundle.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import __version__, sevenzip

FORMAT = "jcdiag-bundle/1"
HEADER_NAME = "bundle.json"
PAYLOAD_NAME = "payload.7z"
HEADER_LIMIT = 1024 * 1024
#: What the public header says of the payload's compression (see collector.sevenzip).
COMPRESSION = "LZMA2 (fast, 256 KiB dictionary; already-compressed data stored)"
_HASH_CHUNK = 1024 * 1024


class BundleError(Exception):
    """A bundle that cannot be written or opened; the message names the file and the fix."""


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


def seal(payload: Path, out_dir: Path, bundle_id: str, header: dict, work_dir: Path) -> WrittenBundle:
    """Wrap a closed payload into ``<out_dir>/<bundle_id>.7z`` with its public header.

    ``header`` holds the public fields (case, recipients...); format, bundle ID,
    creation time, tool and payload digest are filled in here.  The payload is
    removed afterwards, whether sealing worked or not.
    """
    try:
        digest, size = sha256_file(payload)
        full_header = {
            "format": FORMAT,
            "bundle_id": bundle_id,
            "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            "tool": {"name": "jcdiag", "version": __version__},
            **header,
            "payload": {"name": PAYLOAD_NAME, "sha256": digest, "size": size,
                        "compression": COMPRESSION, "encryption": "7zAES-256, headers encrypted"},
        }
        header_path = work_dir / HEADER_NAME
        header_path.write_text(json.dumps(full_header, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        final = out_dir / f"{bundle_id}.7z"
        fd, tmp_name = tempfile.mkstemp(prefix=f".{bundle_id}.", suffix=".partial", dir=out_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            sevenzip.write_archive([(header_path, HEADER_NAME), (payload, PAYLOAD_NAME)], tmp,
                                   password=None, method=sevenzip.COPY)
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        payload.unlink(missing_ok=True)
    bundle_digest, bundle_size = sha256_file(final)
    return WrittenBundle(final, bundle_digest, bundle_size, full_header)


def _py7zr():
    """py7zr, imported when a bundle is read: writing never needs it, and it costs a
    collect some 15 MB of memory and 0.15 s of start-up."""
    import py7zr
    import py7zr.io
    return py7zr


def _open_outer(path: Path):
    py7zr = _py7zr()
    try:
        return py7zr.SevenZipFile(path, "r")
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except (py7zr.Bad7zFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise BundleError(f"{path}: not a jcdiag bundle, or damaged/truncated ({exc})") from None


def read_header(path: Path | str) -> dict:
    """The public header of a bundle; no key needed."""
    path = Path(path)
    try:
        with _open_outer(path) as outer:
            if HEADER_NAME not in outer.getnames():
                raise BundleError(f"{path}: has no {HEADER_NAME}: not a jcdiag bundle")
            factory = _py7zr().io.BytesIOFactory(HEADER_LIMIT)
            outer.extract(targets=[HEADER_NAME], factory=factory)
            data = factory.get(HEADER_NAME).read()
    except BundleError:
        raise
    except Exception as exc:  # py7zr raises many types on damaged input
        raise BundleError(f"{path}: damaged or truncated bundle ({type(exc).__name__}: {exc})") from None
    try:
        header = json.loads(data)
    except ValueError:
        raise BundleError(f"{path}: {HEADER_NAME} is not valid JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BundleError(f"{path}: unsupported bundle format {header.get('format') if isinstance(header, dict) else None!r}")
    return header


def extract_payload(path: Path, header: dict, work_dir: Path) -> Path:
    """Copy ``payload.7z`` out of the bundle into ``work_dir`` and check its SHA-256."""
    expected = header.get("payload", {})
    try:
        with _open_outer(path) as outer:
            if PAYLOAD_NAME not in outer.getnames():
                raise BundleError(f"{path}: has no {PAYLOAD_NAME}")
            outer.extract(path=work_dir, targets=[PAYLOAD_NAME])
    except BundleError:
        raise
    except Exception as exc:
        raise BundleError(f"{path}: damaged or truncated bundle ({type(exc).__name__}: {exc})") from None
    payload = work_dir / PAYLOAD_NAME
    if not payload.is_file():
        raise BundleError(f"{path}: damaged or truncated bundle (payload missing)")
    digest, size = sha256_file(payload)
    if digest != expected.get("sha256") or size != expected.get("size"):
        raise BundleError(f"{path}: payload SHA-256 does not match the header: the bundle was "
                          "modified or is incomplete; fetch it again")
    return payload


def extract_encrypted(payload: Path, password: str, to_dir: Path) -> list[str]:
    """Decrypt and extract the payload into ``to_dir``; the names extracted."""
    try:
        with _py7zr().SevenZipFile(payload, "r", password=password) as archive:
            names = archive.getnames()
            archive.extractall(path=to_dir)
    except Exception as exc:  # wrong passwords surface as many different errors
        raise BundleError("cannot decrypt the payload: wrong key or password "
                          f"({type(exc).__name__})") from None
    return names


def open_bundle(path: Path | str, to_dir: Path | str,
                password_for: Callable[[dict], str]) -> tuple[dict, list[str]]:
    """Verify and extract a bundle; ``password_for(header)`` yields the payload password."""
    path, to_dir = Path(path), Path(to_dir)
    header = read_header(path)
    password = password_for(header)
    work = Path(tempfile.mkdtemp(prefix="jcdiag-open-"))
    try:
        payload = extract_payload(path, header, work)
        to_dir.mkdir(parents=True, exist_ok=True)
        names = extract_encrypted(payload, password, to_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return header, names
