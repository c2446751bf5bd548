"""``jcdiag open``: verify a bundle, decrypt its payload and extract it, safely.

A bundle is hostile input (it arrives by e-mail or as a ticket attachment), so:

* Only a validated bundle ID chooses a folder (the default target); no name from
  the header or the payload ever becomes a path outside the extraction folder.
* Everything happens in a private (0700) run folder created next to the target,
  on the same filesystem (:func:`collector.workspace.private_workspace`, which
  also removes it on SIGINT/SIGTERM and sweeps what a killed run left).  The
  extracted tree is renamed onto the target only when every check passed; on
  any failure nothing is left: no target, no temporary folder, no payload copy.
* The order of checks tells the failures apart: the header (schema), the
  credentials against the header (password vs. key, which keys), the payload
  bytes against the header's SHA-256 and size (tampered or truncated), then the
  decryption: with the payload verified, a password that does not open it is the
  wrong password.
* Before anything is extracted the payload's listing is checked: at most
  :data:`MAX_ENTRIES` entries, names of at most :data:`MAX_NAME` characters that
  are relative, without ``..``/``.``/empty parts, backslashes, drive letters, NUL
  or control characters, no duplicates, regular files and folders only (no
  symlinks, junctions, sockets, devices or FIFOs), and the declared sizes summed
  within ``max_size``.  The writer then counts the bytes really written and stops
  at ``max_size`` whatever the listing claimed.
* Files are written by this module's own writer (py7zr decompresses into it):
  created with ``O_EXCL | O_NOFOLLOW`` and mode 0600 under folders of mode 0700,
  never with the archive's modes (no setuid bits, no world-writable files).

The outer archive is read only for ``bundle.json`` and ``payload.7z``; any other
or repeated entry is refused (:func:`collector.bundle.outer_entries`).
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .bundle import (MAX_ARCHIVE_ENTRIES, PAYLOAD_NAME, BundleError, _py7zr, open_outer, outer_entries,
                     read_header)
from .envelope import unseal
from .header import shown
from .workspace import private_workspace

DEFAULT_MAX_EXTRACT = 4 * 1024 ** 3     # --max-extract-size default (4G)
MAX_ENTRIES = MAX_ARCHIVE_ENTRIES
SEVENZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
MAX_NAME = 1024                          # characters of a whole entry name
MAX_PART_BYTES = 255                     # UTF-8 bytes of one path component (NAME_MAX)
_DRIVE = re.compile(r"^[A-Za-z]:")
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


@dataclass(frozen=True)
class Credentials:
    """What the engineer gave: a private key (``--key``) or a password (``--password-file``)."""

    private_key: object = None
    password: Optional[str] = None


@dataclass(frozen=True)
class Opened:
    header: dict
    target: Path
    names: list[str]
    bytes_written: int


# ----------------------------------------------------------------------------- credentials


def payload_password(header: dict, creds: Credentials) -> str:
    """The payload's password from the header and the engineer's credentials, or a
    BundleError/EnvelopeError saying what to use instead."""
    recipients = header.get("recipients", [])
    if creds.private_key is None:
        if recipients:
            ids = [r["key_id"] for r in recipients]
            raise BundleError(f"this bundle is sealed to support keys ({', '.join(ids)}), not to a "
                              "password: open it with --key PEM", "needs_key", bundle_key_ids=ids)
        return creds.password or ""
    if header.get("password_protected"):
        raise BundleError("this bundle is protected by a password, not sealed to a key: open it with "
                          "--password-file F", "needs_password")
    return unseal(recipients, creds.private_key)


def default_target(header: dict) -> Path:
    """``./<bundle ID>``: the validated ID is the only header value that names a folder."""
    return Path.cwd() / header["bundle_id"]


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise BundleError(f"{target} exists and is not a folder; choose another --to", "target_not_empty")
    if target.is_dir() and any(target.iterdir()):
        raise BundleError(f"{target} is not empty; choose another folder with --to", "target_not_empty")
    if not target.parent.is_dir():
        raise BundleError(f"{target.parent} does not exist; create it first or choose another --to",
                          "io_error")


# ----------------------------------------------------------------------------- writing


class _Budget:
    """Bytes written so far across all files, against ``limit``; thread-safe."""

    def __init__(self, limit: int, what: str):
        self.limit, self.what, self.used = limit, what, 0
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        with self._lock:
            self.used += n
            if self.used > self.limit:
                raise BundleError(f"{self.what} writes more than {self.limit} bytes (more than it "
                                  "declares, or more than --max-extract-size allows): stopped, nothing "
                                  "was kept", "extract_cap_exceeded", limit=self.limit)


class _CappedFile:
    """A py7zr writer (``Py7zIO``) onto one new file, counting into a shared budget."""

    def __init__(self, path: Path, budget: _Budget, digest=None):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY | getattr(os, "O_CLOEXEC", 0)
        self.fd: Optional[int] = os.open(path, flags, 0o600)
        self.budget, self.digest, self.written = budget, digest, 0

    def write(self, data) -> int:
        self.budget.take(len(data))
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        if self.digest is not None:
            self.digest.update(data)
        self.written += len(data)
        return len(data)

    def read(self, size=None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.written

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.written

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Factory:
    """Hands py7zr a :class:`_CappedFile` for each name it was told to expect, and
    nothing else: a name py7zr did not get from the checked listing is refused."""

    def __init__(self, root: Path, allowed: set[str], budget: _Budget, digest=None):
        self.root, self.allowed, self.budget, self.digest = root, allowed, budget, digest
        self.products: list[_CappedFile] = []

    def create(self, filename: str) -> _CappedFile:
        if filename not in self.allowed:
            raise BundleError(f"refused to write {shown(filename)}: not a checked entry", "unsafe_entry")
        self.allowed.discard(filename)                     # each name is written once
        path = self.root / filename
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
        product = _CappedFile(path, self.budget, self.digest)
        self.products.append(product)
        return product

    def close_all(self) -> None:
        for product in self.products:
            product.close()


def _factory(root: Path, allowed: set[str], budget: _Budget, digest=None):
    """A ``py7zr.io.WriterFactory`` subclass instance (py7zr checks the type)."""
    io = _py7zr().io

    class Factory(_Factory, io.WriterFactory):
        pass

    return Factory(root, allowed, budget, digest)


# ----------------------------------------------------------------------------- payload


def copy_payload(path: Path, header: dict, work: Path) -> Path:
    """``payload.7z`` copied out of the bundle into ``work``, its SHA-256 and size
    checked against the header while copying (at most the declared size is written)."""
    expected = header["payload"]
    mismatch = BundleError(f"{path}: the payload does not match its header (SHA-256 or size): the "
                           "bundle was modified or is incomplete; fetch it again", "payload_mismatch")
    with open_outer(path) as outer:
        entry = outer_entries(outer, path)[PAYLOAD_NAME]
        if entry.uncompressed != expected["size"]:
            raise mismatch
        if outer.archiveinfo().method_names != ["COPY"] or (
                entry.compressed is not None and entry.compressed != entry.uncompressed):
            raise BundleError(f"{path}: {PAYLOAD_NAME} is compressed inside the bundle; jcdiag stores "
                              "it as is, so this file was not made by jcdiag", "not_a_bundle")
        digest = hashlib.sha256()
        factory = _factory(work, {PAYLOAD_NAME}, _Budget(expected["size"], f"{path}: {PAYLOAD_NAME}"), digest)
        try:
            outer.extract(targets=[PAYLOAD_NAME], factory=factory)
        except (BundleError, OSError):
            raise
        except Exception:   # a CRC or read error of the copy: damaged or truncated bundle
            raise mismatch from None
        finally:
            factory.close_all()
    payload = work / PAYLOAD_NAME
    if not factory.products or factory.products[0].written != expected["size"] \
            or digest.hexdigest() != expected["sha256"]:
        raise mismatch
    return payload


def check_name(name: object) -> str:
    """``name`` if it is a safe relative entry name, else the reason it is not (raised)."""
    def bad(why: str):
        return BundleError(f"the payload holds an unsafe entry {shown(name, 80)}: {why}; nothing was "
                           "extracted", "unsafe_entry", entry=name if isinstance(name, str) else None)
    if not isinstance(name, str) or not name:
        raise bad("empty name")
    if len(name) > MAX_NAME:
        raise bad(f"name longer than {MAX_NAME} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        raise bad("NUL, control, format or line-separator characters")
    if "\\" in name:
        raise bad("backslash")
    if name.startswith("/") or _DRIVE.match(name):
        raise bad("absolute path or drive letter")
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise bad("empty, '.' or '..' path component")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES:
            raise bad(f"a path component longer than {MAX_PART_BYTES} bytes")
        if os.name == "nt" and (":" in part or _WINDOWS_RESERVED.match(part) or part[-1] in ". "):
            raise bad("a name Windows cannot hold safely")
    return name


def _fold(name: str) -> str:
    """How Windows and macOS compare names: ignoring case and Unicode normal form."""
    return unicodedata.normalize("NFC", name).casefold()


def plan(archive, max_size: int) -> tuple[list[str], list[str]]:
    """The payload's folders and files after every listing check (see the module doc)."""
    entries = list(archive.files)
    if len(entries) > MAX_ENTRIES:
        raise BundleError(f"the payload lists {len(entries)} entries; at most {MAX_ENTRIES} are "
                          "extracted", "extract_cap_exceeded", limit=MAX_ENTRIES)
    dirs: list[str] = []
    files: list[str] = []
    seen: set[str] = set()
    declared = 0
    for entry in entries:
        name = check_name(entry.filename)
        fmt = entry.st_fmt
        special = (entry.is_symlink or entry.is_junction or entry.is_socket
                   or (fmt is not None and fmt not in (stat.S_IFREG, stat.S_IFDIR)))
        if special:
            raise BundleError(f"the payload holds {shown(name, 80)}, a link or special file (not a "
                              "regular file or folder); nothing was extracted", "unsafe_entry", entry=name)
        key = _fold(name)
        if key in seen:
            raise BundleError(f"the payload holds {shown(name, 80)} twice (names are compared "
                              "ignoring case and Unicode form, as Windows and macOS do); nothing "
                              "was extracted", "unsafe_entry", entry=name)
        seen.add(key)
        if entry.is_directory or fmt == stat.S_IFDIR:
            if not entry.emptystream:
                raise BundleError(f"the payload's folder {shown(name, 80)} carries data; nothing was "
                                  "extracted", "unsafe_entry", entry=name)
            dirs.append(name)
        else:
            files.append(name)
            declared += max(0, entry.uncompressed or 0)
    file_set = {_fold(f) for f in files}
    for name in dirs + files:
        parts = _fold(name).split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in file_set:
                raise BundleError(f"the payload holds {shown(name, 80)} under a file of the same name; "
                                  "nothing was extracted", "unsafe_entry", entry=name)
    if declared > max_size:
        raise BundleError(f"the payload declares {declared} bytes, more than --max-extract-size "
                          f"{max_size}; nothing was extracted (raise --max-extract-size if you trust "
                          "it)", "extract_cap_exceeded", declared=declared, limit=max_size)
    return dirs, files


def _check_sealed(payload: Path, py7zr, max_size: int) -> None:
    """The payload must be what the header says: a 7z whose file list is encrypted (so a
    payload anyone can read, or no 7z at all, is never reported as a wrong password).
    A readable list is still checked entry by entry first, so a hostile name is reported
    as what it is."""
    corrupt = "the payload matches its header's SHA-256 but is not an encrypted 7z as jcdiag writes: "
    with open(payload, "rb") as fh:
        if fh.read(len(SEVENZIP_MAGIC)) != SEVENZIP_MAGIC:
            raise BundleError(corrupt + "it is no 7z archive; nothing was extracted", "payload_corrupt")
    try:
        readable = py7zr.SevenZipFile(payload, "r")
    except py7zr.PasswordRequired:
        return                                        # as it should be: the list needs the secret
    except Exception:
        raise BundleError(corrupt + "its structure is damaged; nothing was extracted",
                          "payload_corrupt") from None
    with readable:
        plan(readable, max_size)
    raise BundleError(corrupt + "its file list is not encrypted; nothing was extracted", "payload_corrupt")


def extract_payload(payload: Path, password: str, by_key: bool, tree: Path, max_size: int) -> tuple[list[str], int]:
    """Decrypt and extract the (verified) payload into ``tree``: the names and bytes written."""
    py7zr = _py7zr()
    _check_sealed(payload, py7zr, max_size)
    try:
        archive = py7zr.SevenZipFile(payload, "r", password=password)
    except Exception:
        if by_key:
            raise BundleError("the payload matches its header but does not decrypt with the secret "
                              "sealed to your key: the bundle was made damaged", "payload_corrupt") from None
        raise BundleError("wrong password: the payload matches its header (SHA-256 verified) but this "
                          "password does not decrypt it", "wrong_password") from None
    with archive:
        dirs, files = plan(archive, max_size)
        for name in dirs:
            os.makedirs(tree / name, mode=0o700, exist_ok=True)
        budget = _Budget(max_size, "the payload")
        factory = _factory(tree, set(files), budget)
        try:
            archive.extractall(factory=factory)
        except (BundleError, OSError):
            raise
        except Exception as exc:
            raise BundleError(f"the payload's data is damaged ({type(exc).__name__}): the file list "
                              "decrypted but its contents do not; nothing was extracted",
                              "payload_corrupt") from None
        finally:
            factory.close_all()
    if factory.allowed:
        raise BundleError(f"the payload's data is damaged: {len(factory.allowed)} listed files were "
                          "never written; nothing was extracted", "payload_corrupt")
    return dirs + files, budget.used


# ----------------------------------------------------------------------------- open


def open_bundle(path: Path | str, creds: Credentials, to_dir: Path | str | None = None,
                max_size: int = DEFAULT_MAX_EXTRACT) -> Opened:
    """Verify, decrypt and extract a bundle into ``to_dir`` (default ``./<bundle ID>``).

    ``to_dir`` may exist only as an empty folder (it is replaced); its parent must
    exist.  On any failure, nothing is left behind (see the module doc).
    Raises :class:`BundleError` or :class:`EnvelopeError` (both carry ``kind``),
    ``OSError`` for the engineer's own disk.
    """
    path = Path(path)
    header = read_header(path)
    if header["payload"]["size"] > max_size:           # its copy alone would pass the cap
        raise BundleError(f"the payload is {header['payload']['size']} bytes, more than "
                          f"--max-extract-size {max_size}; nothing was extracted (raise "
                          "--max-extract-size if you trust it)", "extract_cap_exceeded",
                          declared=header["payload"]["size"], limit=max_size)
    password = payload_password(header, creds)
    target = Path(os.path.abspath(to_dir)) if to_dir is not None else default_target(header)
    _check_target(target)
    with private_workspace(target.parent) as work:
        payload = copy_payload(path, header, work)
        tree = work / "tree"
        tree.mkdir(mode=0o700)
        names, written = extract_payload(payload, password, creds.private_key is not None, tree, max_size)
        payload.unlink()
        _check_target(target)
        try:
            os.rename(tree, target)
        except OSError:
            if os.name != "nt" or not target.is_dir() or any(target.iterdir()):
                raise
            target.rmdir()                  # Windows cannot rename onto an empty folder
            os.rename(tree, target)
    return Opened(header, target, names, written)

