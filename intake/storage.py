"""Where the intake keeps everything: a local directory or an S3-compatible bucket.

The service holds no state of its own (uploads in progress included): every
fact lives in objects under a small key layout, so intake processes are
interchangeable behind a load balancer and may share one bucket::

    uploads/<upload-id>/info.json                 the tus upload: length, metadata, case
    uploads/<upload-id>/parts/<offset>-<length>   each accepted PATCH body, written whole
    bundles/<bundle-id>/<case>/<upload-id>.7z     the assembled, verified bundle
    bundles/<bundle-id>/<case>/record.json        written last: a bundle is visible only then
                                                  (<case>: c-<case ID>, or h-<sha256> of an odd one)

Both backends give the same small contract: whole-object writes that readers see
all or nothing, exclusive creation of small objects (so two processes cannot both
publish one bundle ID), streamed reads, and listing by prefix.  The tus logic in
:mod:`intake.tus` is written once against it.
"""
from __future__ import annotations

import errno
import io
import os
import shutil
import re
import tempfile
import time
from collector.durable import fsync_dir
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Optional

READ_CHUNK = 1024 * 1024
TRANSFER_CHUNK = 8 * 1024 * 1024
SINGLE_PUT = 64 * 1024 * 1024            # objects up to this size go up in one PUT
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class StorageError(Exception):
    """The backend failed; the message names the backend and the cause."""


class StorageFull(StorageError):
    """No room to write (a full disk, a quota, a file-size limit): the service answers 507."""


_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def is_full(exc: BaseException) -> bool:
    """Whether an OSError means "no room" rather than a broken request or a bug."""
    return isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS


@contextmanager
def full_as_507(what: str) -> Iterator[None]:
    """Turn a "no room" OSError inside the block into :class:`StorageFull` naming ``what``."""
    try:
        yield
    except OSError as exc:
        if is_full(exc):
            raise StorageFull(f"no room to store {what} ({exc.strerror})") from None
        raise


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    modified: float          # Unix time


def check_key(key: str) -> str:
    """Keys are built from validated IDs only; refuse anything that could escape a prefix."""
    parts = key.split("/")
    if not parts or any(not _KEY_PART.match(p) or p in (".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class Storage(ABC):
    """The contract both backends keep (see the module docstring)."""

    description = ""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store a local file under ``key``; readers see the old object or the whole new one."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, exclusive: bool = False) -> bool:
        """Store a small object; with ``exclusive``, False (and nothing written) if it exists."""

    @abstractmethod
    def get_bytes(self, key: str, limit: int = READ_CHUNK) -> Optional[bytes]:
        """A small object's bytes (at most ``limit``), or None when it does not exist."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A streamed reader of an object; KeyError when it does not exist.  Close it."""

    @abstractmethod
    def write_stream(self, key: str, chunks: Iterable[bytes]) -> None:
        """Store an object whose bytes come from ``chunks``, with bounded memory."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[Entry]:
        """Every object whose key starts with ``prefix`` (recursively), in key order."""

    @abstractmethod
    def stat(self, key: str) -> Optional[Entry]:
        """Size and time of one object, or None."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""

    def delete_prefix(self, prefix: str) -> None:
        for entry in list(self.list(prefix)):
            self.delete(entry.key)

    @contextmanager
    def scratch_file(self) -> Iterator[Path]:
        """A private temporary file path for a request body, removed afterwards."""
        fd, name = tempfile.mkstemp(prefix="jcdiag-intake-", suffix=".part", dir=self.scratch_dir())
        os.close(fd)
        try:
            yield Path(name)
        finally:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass

    def scratch_dir(self) -> Optional[str]:
        return None

    def fingerprint(self, key: str) -> Optional[tuple]:
        """Something that changes whenever the object at ``key`` is replaced (None: unknown).

        Lets a process trust a running hash of parts it stored itself (see
        :meth:`intake.tus.TusService.finish`); backends without one always re-hash.
        """
        return None

    def free_bytes(self) -> int:
        """Free space where request bodies and assembled bundles are written (the disk floor)."""
        return shutil.disk_usage(self.scratch_dir() or tempfile.gettempdir()).free

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageError unless the backend answers now (``/readyz``)."""


class LocalStorage(Storage):
    """A directory tree; writes go to ``.tmp/`` and are renamed into place (same filesystem)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.description = f"local directory {self.root}"
        self._sweep_tmp()

    def _sweep_tmp(self, older_than: float = 3600.0) -> None:
        """Remove temporary files a crashed process left (an hour is far past any request)."""
        cutoff = time.time() - older_than
        for item in self.tmp.iterdir():
            try:
                if item.stat().st_mtime < cutoff:
                    item.unlink()
            except OSError:
                pass

    def scratch_dir(self) -> str:
        return str(self.tmp)

    def fingerprint(self, key: str) -> Optional[tuple]:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)   # put_file always renames a new file in

    def ping(self) -> None:
        if not (self.tmp.is_dir() and os.access(self.tmp, os.W_OK | os.X_OK)):
            raise StorageError(f"{self.description}: not a writable folder")

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _publish(self, tmp: Path, target: Path, exclusive: bool) -> bool:
        target.parent.mkdir(parents=True, exist_ok=True)
        if exclusive:
            try:
                os.link(tmp, target)       # fails if the target exists: atomic create-once
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, target)
        fsync_dir(target.parent)
        return True

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        path = Path(path)
        if path.parent.resolve() == self.tmp:
            with full_as_507(key):
                with open(path, "rb+") as fh:
                    os.fsync(fh.fileno())
                self._publish(path, target, False)
            return
        self.write_stream(key, _file_chunks(path))

    def put_bytes(self, key: str, data: bytes, exclusive: bool = False) -> bool:
        target = self._path(key)
        with full_as_507(key):
            tmp = self._tmp_file()
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return self._publish(tmp, target, exclusive)

    def _tmp_file(self) -> Path:
        fd, name = tempfile.mkstemp(prefix="w-", dir=self.tmp)
        os.close(fd)
        return Path(name)

    def get_bytes(self, key: str, limit: int = READ_CHUNK) -> Optional[bytes]:
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read(limit)
        except FileNotFoundError:
            return None

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise KeyError(key) from None

    def write_stream(self, key: str, chunks: Iterable[bytes]) -> None:
        target = self._path(key)
        with full_as_507(key):
            tmp = self._tmp_file()
            try:
                with open(tmp, "wb") as fh:
                    for chunk in chunks:
                        fh.write(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
                self._publish(tmp, target, False)
            finally:
                tmp.unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[Entry]:
        base = self.root / prefix.rstrip("/") if prefix.endswith("/") else self.root / os.path.dirname(prefix)
        if not base.is_dir():
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        st = full.stat()
                    except FileNotFoundError:
                        continue
                    found.append(Entry(key, st.st_size, st.st_mtime))
        yield from sorted(found, key=lambda e: e.key)

    def stat(self, key: str) -> Optional[Entry]:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return Entry(key, st.st_size, st.st_mtime)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        for parent in path.parents:            # tidy empty folders up to the root
            if parent == self.root:
                break
            try:
                parent.rmdir()
            except OSError:
                break


class S3Storage(Storage):
    """An S3-compatible bucket through boto3; credentials come from the environment.

    Big objects move with boto3's managed transfer in 8 MiB parts and at most two
    threads, so memory stays bounded whatever the bundle size.
    """

    def __init__(self, endpoint: Optional[str], bucket: str, prefix: str = ""):
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config
        except ImportError:
            raise StorageError("S3 storage needs boto3: pip install 'jcdiag[intake]'") from None
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                                   config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                                 s3={"addressing_style": "path"}))
        self.transfer = TransferConfig(multipart_threshold=TRANSFER_CHUNK,
                                       multipart_chunksize=TRANSFER_CHUNK, max_concurrency=2)
        self.description = f"S3 bucket {bucket} at {endpoint or 'AWS'}"
        self._check_bucket()

    def _check_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise StorageError(f"{self.description}: cannot use the bucket ({code}); check "
                               "--s3-bucket and the AWS_* credentials in the environment") from None
        except BotoCoreError as exc:
            raise StorageError(f"{self.description}: unreachable ({exc})") from None

    def ping(self) -> None:
        self._check_bucket()

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @staticmethod
    def _missing(exc) -> bool:
        code = exc.response.get("Error", {}).get("Code", "")
        return code in ("NoSuchKey", "404", "NotFound")

    def put_file(self, key: str, path: Path) -> None:
        if Path(path).stat().st_size <= SINGLE_PUT:        # a part: one streamed PUT, no part buffers
            with open(path, "rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body)
            return
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)

    def put_bytes(self, key: str, data: bytes, exclusive: bool = False) -> bool:
        from botocore.exceptions import ClientError
        kwargs = {"IfNoneMatch": "*"} if exclusive else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            if exclusive and code == "NotImplemented":     # store without conditional writes
                if self.stat(key) is not None:
                    return False
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
                return True
            raise
        return True

    def get_bytes(self, key: str, limit: int = READ_CHUNK) -> Optional[bytes]:
        try:
            with self.open(key) as body:
                return body.read(limit)
        except KeyError:
            return None

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._missing(exc):
                raise KeyError(key) from None
            raise
        return response["Body"]

    def write_stream(self, key: str, chunks: Iterable[bytes]) -> None:
        self.client.upload_fileobj(_ChunkReader(chunks), self.bucket, self._key(key),
                                   Config=self.transfer)

    def list(self, prefix: str) -> Iterator[Entry]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                yield Entry(obj["Key"][len(self.prefix):], int(obj["Size"]),
                            obj["LastModified"].timestamp())

    def stat(self, key: str) -> Optional[Entry]:
        from botocore.exceptions import ClientError
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise
        return Entry(key, int(head["ContentLength"]), head["LastModified"].timestamp())

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


class _ChunkReader(io.RawIOBase):
    """A read-only file object over an iterator of byte chunks (for boto3 uploads)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            yield chunk




def open_storage(data_dir: Path, s3_endpoint: Optional[str] = None,
                 s3_bucket: Optional[str] = None) -> Storage:
    """The backend the command line asks for: S3 when a bucket is named, else ``data_dir/store``."""
    if s3_bucket:
        return S3Storage(s3_endpoint, s3_bucket)
    if s3_endpoint:
        raise StorageError("--s3-endpoint needs --s3-bucket B")
    return LocalStorage(Path(data_dir) / "store")


def copy_stream(reader: BinaryIO, writer, chunk: int = READ_CHUNK) -> int:
    """Copy a reader to a writer in bounded pieces; bytes copied."""
    total = 0
    while data := reader.read(chunk):
        writer.write(data)
        total += len(data)
    return total
