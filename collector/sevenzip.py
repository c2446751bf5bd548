"""A streaming 7z writer: LZMA2 (or Copy) + 7zAES-256 with encrypted headers, on every core.

Why our own writer: py7zr compresses on one core at about 11 MB/s and its memory
depends on how it is fed; an endpoint in trouble wants the bundle fast and light.
This writer produces what ``7z a -mhe=on -p...`` produces and stock 7-Zip, p7zip and
py7zr open (format: ``7zFormat.txt`` of the LZMA SDK), and nothing more:

* Folder data is LZMA2 (7-Zip's own encoder through pylzma, else liblzma:
  :mod:`collector.lzma2enc`) or Copy, each followed by 7zAES
  (AES-256-CBC; key = SHA-256 over 2**19 rounds of salt + UTF-16LE password + counter,
  as 7-Zip defines it; a random IV per folder, kept in the coder properties).
* Both cores: a folder's data is cut into fixed blocks that are compressed as
  independent LZMA2 streams in a thread pool (both encoders release the GIL) and joined
  into one LZMA2 stream -- every block starts with a dictionary reset, exactly what
  7-Zip's own multithreaded LZMA2 encoder emits -- so even one big log uses both cores.
* Flat memory: inputs are read in bounded chunks; at most ``threads + 1`` blocks are
  in flight; packed data is encrypted and written to the output in order as soon as
  the oldest block is done (no temporary file, no second write).  Memory depends on
  ``block_size`` and ``threads``, never on the size of the inputs.
* Data that is already compressed (by name, or a quick zlib probe of its first
  64 KiB) goes into a Copy folder instead of wasting the compressor's time.
* The header (names UTF-16LE, mtimes, attributes, CRC32 of every file, empty files)
  is itself LZMA2-compressed and AES-encrypted and stored as an EncodedHeader, so
  without the password not even the names can be listed.

A file of a 7z archive lives in exactly one folder, so the list order is the data
order: a new folder starts only when the method changes (text after a ``.gz``).
Empty files have no data and are listed last.
"""
from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import queue
import stat
import struct
import threading
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import BinaryIO, Callable, Iterable, Iterator, Optional

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .lzma2enc import DICT_SIZE, LZMA2_FILTER, block_encoder

__all__ = ["StreamingWriter", "write_archive", "StoredFile", "write_stored", "derive_key", "is_precompressed",
           "LZMA2_FILTER", "BLOCK_SIZE", "AES_CYCLES_POWER", "COPY", "LZMA2", "SevenZipWriteError"]

# ---------------------------------------------------------------------------- format constants

SIGNATURE = b"7z\xbc\xaf\x27\x1c"
FORMAT_VERSION = b"\x00\x04"
START_HEADER_SIZE = 32

K_END, K_HEADER, K_MAIN_STREAMS_INFO, K_FILES_INFO = 0x00, 0x01, 0x04, 0x05
K_PACK_INFO, K_UNPACK_INFO, K_SUBSTREAMS_INFO = 0x06, 0x07, 0x08
K_SIZE, K_CRC, K_FOLDER, K_CODERS_UNPACK_SIZE, K_NUM_UNPACK_STREAM = 0x09, 0x0A, 0x0B, 0x0C, 0x0D
K_EMPTY_STREAM, K_EMPTY_FILE, K_NAME, K_MTIME, K_WIN_ATTRIBUTES = 0x0E, 0x0F, 0x11, 0x14, 0x15
K_ENCODED_HEADER = 0x17

METHOD_COPY = b"\x00"
METHOD_LZMA2 = b"\x21"
METHOD_AES = b"\x06\xf1\x07\x01"

COPY, LZMA2 = "copy", "lzma2"

#: 7-Zip's default key-stretching work factor (2**19 SHA-256 rounds).
AES_CYCLES_POWER = 19
AES_BLOCK = 16

#: The header is small and read once: compress it harder.
HEADER_FILTER: dict = {"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 1 << 20}

#: Bytes of folder data per independent LZMA2 block (one task for a worker thread).
BLOCK_SIZE = 4 << 20
READ_CHUNK = 1 << 20
#: The archive's last data is cut into one block per worker when each gets this much.
MIN_SPLIT = 512 << 10
PROBE_SIZE = 64 << 10
#: Files a background writer may have queued (paths, so memory is not an issue).
FEEDER_QUEUE = 1024
#: Bytes of streamed entries (:meth:`StreamingWriter.open_entry`) queued for the feeder at
#: most; the producer waits beyond it, so memory stays flat when compression lags.
QUEUED_BYTES = 8 << 20

#: Names whose content is already compressed: stored (Copy + AES), not recompressed.
STORED_SUFFIXES = frozenset({
    ".gz", ".tgz", ".bz2", ".tbz2", ".xz", ".txz", ".lzma", ".zst", ".lz4", ".br", ".z",
    ".zip", ".7z", ".rar", ".cab", ".jar", ".war", ".apk", ".ipa", ".docx", ".xlsx", ".pptx",
    ".odt", ".ods", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".heic", ".avif",
    ".mp3", ".m4a", ".aac", ".ogg", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".dmg",
})
_INCOMPRESSIBLE_RATIO = 0.9
_MIN_PROBE = 4096

_FILETIME_EPOCH = 116444736000000000      # 1601-01-01 to 1970-01-01 in 100 ns units
_ATTR_ARCHIVE = 0x20
_ATTR_UNIX_EXTENSION = 0x8000


class SevenZipWriteError(OSError):
    """The archive could not be written; the partial output has been removed.  An
    OSError: callers report it like the disk error it usually wraps (a full disk
    under the background writer), in one line."""


# ---------------------------------------------------------------------------- encodings

def number(value: int) -> bytes:
    """7z's variable-length UINT64: the leading one bits of the first byte count the extra bytes."""
    if value < 0:
        raise ValueError("7z numbers are unsigned")
    for extra in range(8):
        if value < 1 << (7 * (extra + 1)):
            high = value >> (8 * extra)
            first = ((0xFF << (8 - extra)) & 0xFF) | high
            return bytes([first]) + (value & ((1 << (8 * extra)) - 1)).to_bytes(extra, "little")
    return b"\xff" + value.to_bytes(8, "little")


def bit_vector(bits: list[bool]) -> bytes:
    """Booleans packed most significant bit first, as 7z stores them."""
    packed = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        if bit:
            packed[index >> 3] |= 0x80 >> (index & 7)
    return bytes(packed)


def _digests(crcs: list[int]) -> bytes:
    return b"\x01" + b"".join(struct.pack("<I", crc) for crc in crcs)   # all defined


def _lzma2_dict_prop(dict_size: int) -> int:
    """The one-byte LZMA2 property: smallest encoded dictionary size >= the real one."""
    for prop in range(40):
        if (2 | (prop & 1)) << (prop // 2 + 11) >= dict_size:
            return prop
    return 40


def filetime(mtime_ns: int) -> int:
    return max(0, mtime_ns // 100 + _FILETIME_EPOCH)


def attributes(mode: int) -> int:
    """Windows attributes with the POSIX mode in the high 16 bits (p7zip's convention)."""
    return _ATTR_ARCHIVE | _ATTR_UNIX_EXTENSION | ((stat.S_IFREG | stat.S_IMODE(mode)) << 16)


# ---------------------------------------------------------------------------- crypto

def derive_key(password: str, salt: bytes = b"", cycles_power: int = AES_CYCLES_POWER) -> bytes:
    """The 7zAES key: SHA-256 over 2**cycles_power copies of salt + UTF-16LE password +
    a 64-bit little-endian counter.

    Fed in batches of 2**16 copies built without a Python loop per copy: a template of
    the copies with zero counters, whose counter bytes are set by strided slice
    assignment (byte 0 runs 0-255, byte 1 steps every 256 copies, the higher bytes are
    the batch's own).  The generator this replaced spent 0.1 s per key in Python, on a
    compressing thread at the start of every collect; hashlib releases the GIL."""
    secret = salt + password.encode("utf-16-le")
    if cycles_power == 0x3F:
        return (secret + bytes(32))[:32]
    digest = hashlib.sha256()
    rounds = 1 << cycles_power
    batch = min(rounds, _KEY_BATCH)
    width = len(secret) + 8
    template = (secret + bytes(8)) * batch
    for start in range(0, rounds, batch):          # start is a multiple of batch
        copies = bytearray(template)
        for byte in range(8):
            if byte < 2:
                copies[len(secret) + byte::width] = _COUNTER_BYTES[byte][:batch]
            elif start >> (8 * byte) & 0xFF:
                copies[len(secret) + byte::width] = bytes([start >> (8 * byte) & 0xFF]) * batch
        digest.update(copies)
    return digest.digest()


_KEY_BATCH = 1 << 16
#: The low two bytes of the counters 0 .. 2**16 - 1 (what every batch of derive_key holds).
_COUNTER_BYTES = (bytes(range(256)) * 256, bytes(v for v in range(256) for _ in range(256)))


def aes_properties(iv: bytes, cycles_power: int = AES_CYCLES_POWER) -> bytes:
    """7zAES coder properties: work factor, no salt, a 16-byte IV."""
    return bytes([cycles_power | 0x40, len(iv) - 1]) + iv


class _AesStream:
    """AES-256-CBC over one packed stream; the tail is zero-padded to a whole block as
    7-Zip does (the coder's unpack size tells the reader where the data ends)."""

    def __init__(self, key: bytes, iv: bytes):
        self._encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        self.plain_size = 0

    def update(self, data: bytes) -> bytes:
        self.plain_size += len(data)
        return self._encryptor.update(data)

    def finish(self) -> bytes:
        pad = -self.plain_size % AES_BLOCK
        return self._encryptor.update(bytes(pad)) + self._encryptor.finalize()


# ---------------------------------------------------------------------------- compression

def is_precompressed(name: str, head: bytes) -> bool:
    """True for data not worth compressing: a compressed-format name, or a first block
    that zlib's fastest level cannot shrink by 10% (high entropy)."""
    if PurePath(name).suffix.lower() in STORED_SUFFIXES:
        return True
    if len(head) < _MIN_PROBE:
        return False
    sample = head[:PROBE_SIZE]
    return len(zlib.compress(sample, 1)) > _INCOMPRESSIBLE_RATIO * len(sample)


@dataclass
class _FileRecord:
    name: str
    mtime: int                # FILETIME
    attrib: int
    size: int = 0
    crc: int = 0
    folder: Optional[int] = None


@dataclass
class _FolderRecord:
    method: str
    iv: Optional[bytes]
    unpack_size: int = 0      # bytes out of the folder (sum of its files)
    coded_size: int = 0       # bytes out of the compressor = into AES
    pack_size: int = 0        # bytes in the archive
    files: list[_FileRecord] = field(default_factory=list)


class _OrderedOutput:
    """Packed pieces of every folder, written to the archive in the order they were queued.

    Why one queue for all folders: each long streamed entry is a folder of its own, and
    when a folder had to be finished (its last blocks written) before the next one could
    take blocks, the compressors ran dry at every file boundary: one core idle while the
    last block compressed, 13 times in a 500 MB collect (about 4% of its wall time).  Now
    the next folder's blocks are queued behind the last one's, and a folder's end is an
    item of the queue too.  At most ``max_pending`` items wait; the oldest is written as
    soon as it is done, or waited for when too many are queued, so memory stays bounded.
    Items are ``(encoder, piece)``: a Future of a compressed block, bytes ready to write
    (stored data), or :data:`_FOLDER_END`.
    """

    def __init__(self, max_pending: int):
        self._max_pending = max_pending
        self._items: deque[tuple["_FolderEncoder", object]] = deque()

    def put(self, encoder: "_FolderEncoder", piece: object) -> None:
        if not self._items and not isinstance(piece, Future):
            encoder._deliver(piece)                  # nothing queued before it: write it now
            return
        self._items.append((encoder, piece))
        items = self._items
        while items and (len(items) > self._max_pending or _ready(items[0][1])):
            done, piece = items.popleft()
            done._deliver(piece)

    def drain(self) -> None:
        """Write everything queued (waiting for the blocks still compressing)."""
        while self._items:
            encoder, piece = self._items.popleft()
            encoder._deliver(piece)

    def cancel(self, encoder: Optional["_FolderEncoder"] = None) -> None:
        """Drop the queued pieces of ``encoder`` (None: of every folder)."""
        kept: deque[tuple[_FolderEncoder, object]] = deque()
        for owner, piece in self._items:
            if encoder is None or owner is encoder:
                if isinstance(piece, Future):
                    piece.cancel()
            else:
                kept.append((owner, piece))
        self._items = kept


_FOLDER_END = object()          # an _OrderedOutput item: the folder's end marker and AES tail


def _ready(piece: object) -> bool:
    return not isinstance(piece, Future) or piece.done()


class _FolderEncoder:
    """Turns one folder's bytes into its packed stream, written in order.

    LZMA2 data is cut into ``block_size`` blocks compressed in the pool; their results,
    stored data and the folder's end go through the writer's :class:`_OrderedOutput`, so
    the amount of data held is bounded and folders follow each other without a gap.
    """

    def __init__(self, record: _FolderRecord, sink: Callable[[bytes], None], output: _OrderedOutput,
                 pool: Optional[ThreadPoolExecutor], encode: Callable[[bytearray], bytes], block_size: int,
                 key: Optional[Callable[[], bytes]]):
        self.record = record
        self._sink = sink
        self._output = output
        self._pool = pool
        self._encode = encode
        self._block_size = block_size
        self._buffer = bytearray()
        self._key = key
        self._aes: Optional[_AesStream] = None     # made at the first write: see _cipher

    def write(self, data: bytes | memoryview) -> None:
        self.record.unpack_size += len(data)
        if self.record.method == COPY:
            self._output.put(self, data if isinstance(data, bytes) else bytes(data))
            return
        view = memoryview(data)
        while view:
            room = self._block_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self._block_size:
                self._submit()

    def finish(self, parts: int = 1) -> None:
        """No more data: the rest is queued, then the folder's end (written in turn).

        ``parts`` > 1 (the archive's last folder): the rest is cut into that many blocks
        if they are long enough, so that every worker has one: nothing comes after them
        to keep a core busy while a single last block compresses."""
        if self.record.method == LZMA2 and self._buffer:
            rest, self._buffer = self._buffer, bytearray()
            step = len(rest) if parts < 2 or len(rest) < parts * MIN_SPLIT else -(-len(rest) // parts)
            for start in range(0, len(rest), step):
                self._buffer = rest[start:start + step]
                self._submit()
        self._output.put(self, _FOLDER_END)

    def cancel(self) -> None:
        self._output.cancel(self)
        self._buffer = bytearray()

    def _submit(self) -> None:
        block, self._buffer = self._buffer, bytearray()
        if self._pool is None:
            self._output.put(self, self._encode(block))
            return
        self._output.put(self, self._pool.submit(self._encode, block))

    def _deliver(self, piece: object) -> None:
        """One queued piece, in its turn (see :class:`_OrderedOutput`)."""
        if piece is _FOLDER_END:
            if self.record.method == LZMA2:
                self._emit(b"\x00")                   # the LZMA2 end marker
            if self._key is not None:
                self._write(self._cipher().finish())
            return
        self._emit(piece.result() if isinstance(piece, Future) else piece)

    def _cipher(self) -> _AesStream:
        """The folder's AES stream, made when its first bytes are written, not when the
        folder begins: the key takes 2**19 SHA-256 rounds, and the first blocks compress
        meanwhile (waiting for it held back the first compression by 0.1 s)."""
        if self._aes is None:
            assert self._key is not None
            self._aes = _AesStream(self._key(), self.record.iv)
        return self._aes

    def _emit(self, coded: bytes) -> None:
        self.record.coded_size += len(coded)
        self._write(self._cipher().update(coded) if self._key is not None else coded)

    def _write(self, packed: bytes) -> None:
        if packed:
            self.record.pack_size += len(packed)
            self._sink(packed)


# ---------------------------------------------------------------------------- cores

def usable_cores() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _CoreShare:
    """No more threads compute at once than there are cores: the compressors and a
    producer (the thread that gathers and redacts) share them.

    Why: on two cores, two compressors beside the redacting thread made three threads
    time-share two cores, and every switch cost the compressors their cache (a match
    finder's tables are about 2 MB, one core's L2): measured, the same compression took
    13% more CPU time beside one busy thread.  So each block's compression holds one of
    ``cores`` slots; a producer holds one while it works and gives it back while it waits
    for the writer (a full queue, too many bytes queued) and when it is done, so the
    compressors then use every core.  With more cores than threads nothing waits.
    """

    def __init__(self, cores: int, producer: bool):
        self._slots = threading.Semaphore(max(1, cores))
        self._producer = producer           # a producer works beside the compressors
        self._held = False                  # it holds a slot now
        if producer:
            self._slots.acquire()
            self._held = True

    def computing(self, work: Callable[[bytearray], bytes]) -> Callable[[bytearray], bytes]:
        """``work`` that waits for a free core first."""
        def in_a_slot(block: bytearray) -> bytes:
            with self._slots:
                return work(block)
        return in_a_slot

    @contextlib.contextmanager
    def producer_waiting(self) -> Iterator[None]:
        """Around a wait of the producer's for the writer: its core is free meanwhile."""
        if self._held:
            self._held = False
            self._slots.release()
        try:
            yield
        finally:
            if self._producer and not self._held:
                self._slots.acquire()
                self._held = True

    def producer_done(self) -> None:
        """The producer hands in its slot for good (the archive is closing)."""
        self._producer = False
        if self._held:
            self._held = False
            self._slots.release()


# ---------------------------------------------------------------------------- writer

class StreamingWriter:
    """Writes one 7z archive as files are handed to it; ``close()`` writes the header.

    ``add_file`` returns once the file has been read; its last blocks are still being
    compressed in the pool while the caller prepares the next file.  Use from one
    thread::

        with StreamingWriter(out, password) as archive:
            archive.add_file(path, "logs/jcagent.log")
            archive.add_bytes("summary.json", blob)

    ``background=True`` lets a producer (gather + redaction) hand over each finished
    file and go on at once: ``add_file``/``add_bytes`` only queue the work, one feeder
    thread reads the files in order into the compressors, and ``close()`` waits for
    it.  A queued file must stay unchanged until ``close()``; a failure in the feeder
    is raised by the next call or by ``close()``.

    ``password=None`` writes an unencrypted archive with a plain header (the outer
    bundle); ``method="copy"`` stores instead of compressing.  If the ``with`` block
    raises, or ``close()`` fails, the partial output is removed.
    """

    def __init__(self, out: Path | str, password: Optional[str] = None, *, method: str = LZMA2,
                 threads: int = 2, block_size: int = BLOCK_SIZE,
                 encode: Optional[Callable[[bytearray], bytes]] = None,
                 detect_stored: bool = True, background: bool = False):
        if method not in (LZMA2, COPY):
            raise ValueError(f"unknown 7z method {method!r}: use 'lzma2' or 'copy'")
        if threads < 1 or block_size < 1:
            raise ValueError("threads and block_size must be at least 1")
        self.path = Path(out)
        self.method = method
        self.detect_stored = detect_stored and method == LZMA2
        self._encode = encode or block_encoder()
        self._block_size = block_size
        self._threads = threads
        self._output = _OrderedOutput(threads + 1)   # one queued block keeps every worker busy
        self._fh: BinaryIO = open(self.path, "wb")
        self._fh.write(bytes(START_HEADER_SIZE))
        self._offset = START_HEADER_SIZE
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="7z") \
            if method == LZMA2 else None
        self._cores = _CoreShare(usable_cores(), producer=background)
        if self._pool is not None:
            self._encode = self._cores.computing(self._encode)
        self._password = password
        self._key_future: Optional[Future] = None
        if password is not None:          # key stretching overlaps the first compression
            helper = self._pool or ThreadPoolExecutor(max_workers=1)
            self._key_future = helper.submit(derive_key, password)
            if self._pool is None:
                helper.shutdown(wait=False)
        self._files: list[_FileRecord] = []
        self._folders: list[_FolderRecord] = []
        self._current: Optional[_FolderEncoder] = None
        self._closed = False
        self._queue: Optional[queue.Queue] = None
        self._feeder: Optional[threading.Thread] = None
        self._feeder_error: Optional[BaseException] = None
        self._aborting = False
        self._open_entry: Optional[EntryStream] = None
        self._queued = 0                               # bytes of entry pieces waiting for the feeder
        self._queued_cond = threading.Condition()
        if background:
            self._queue = queue.Queue(maxsize=FEEDER_QUEUE)
            self._feeder = threading.Thread(target=self._feed_loop, name="7z-feeder", daemon=True)
            self._feeder.start()

    # ------------------------------------------------------------------ public
    def add_file(self, path: Path | str, arcname: str, method: Optional[str] = None) -> None:
        """Stream a regular file into the archive (as read: a growing file is stored as
        far as it was read, the size at open is not trusted)."""
        self._no_open_entry()
        self._run(self._add_file, path, arcname, method)

    def add_bytes(self, arcname: str, data: bytes, mtime_ns: Optional[int] = None,
                  mode: int = 0o644, method: Optional[str] = None) -> None:
        """A small in-memory document (summary, manifest)."""
        self._no_open_entry()
        self._run(self._add_bytes, arcname, bytes(data),
                  time.time_ns() if mtime_ns is None else mtime_ns, mode, method)

    def open_entry(self, arcname: str, mtime_ns: Optional[int] = None, mode: int = 0o644) -> "EntryStream":
        """A file written piece by piece (``write``), then ``close()`` or ``discard()``.

        Why: a gathered log used to be written to a staging file and read back by the
        writer; on a disk filesystem that write alone cost 0.75 CPU-s per 200 MB, on the
        thread that redacts.  An entry streams its bytes straight into the compressors.
        Until it has more than one block it is held in memory and added whole when
        closed (small files share a folder, as before); a longer one gets a folder of
        its own, so ``discard()`` can still take it back whole: the archive is cut back
        to where that folder began.  One entry at a time; nothing else may be added
        while it is open."""
        if self._closed:
            raise SevenZipWriteError(f"{self.path}: archive already closed")
        self._no_open_entry()
        entry = EntryStream(self, arcname, time.time_ns() if mtime_ns is None else mtime_ns, mode,
                            self._block_size)
        self._open_entry = entry
        return entry

    def _add_file(self, path: Path | str, arcname: str, method: Optional[str]) -> None:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            head = fh.read(PROBE_SIZE)
            record = self._start(arcname, st.st_mtime_ns, st.st_mode)
            method = method or self._choose(arcname, head)
            self._feed(record, head, method)
            while chunk := fh.read(READ_CHUNK):
                self._feed(record, chunk, method)

    def _add_bytes(self, arcname: str, data: bytes, mtime_ns: int, mode: int,
                   method: Optional[str]) -> None:
        record = self._start(arcname, mtime_ns, mode)
        method = method or self._choose(arcname, data[:PROBE_SIZE])
        for start in range(0, len(data), READ_CHUNK):
            self._feed(record, data[start:start + READ_CHUNK], method)

    def producer_done(self) -> None:
        """The producer has no more heavy work (the last large file is handed over): the
        core it held goes to the compressors now, not at :meth:`close`; what it still does
        (the summary, small documents) shares the cores for those few milliseconds."""
        self._cores.producer_done()

    def close(self) -> None:
        """Finish the last folder, write the (encrypted) header and the start header."""
        if self._closed:
            return
        self._cores.producer_done()
        try:
            self._stop_feeder()
            self._finish_folder(parts=self._threads)
            self._output.drain()
            next_header = self._next_header()
            next_offset = self._offset
            self._write(next_header)
            self._fh.seek(0)
            self._fh.write(_start_header(next_offset, next_header))
            self._fh.flush()
            self._fh.close()
        except BaseException:
            self.abort()
            raise
        finally:
            self._shutdown()
        self._closed = True

    def abort(self) -> None:
        """Drop everything: queued and pending work is cancelled, the partial file removed."""
        self._aborting = True
        self._cores.producer_done()
        try:
            self._stop_feeder()
        except BaseException:       # the feeder's failure is why we abort; nothing to add
            pass
        self._output.cancel()
        self._current = None
        self._shutdown()
        try:
            self._fh.close()
        finally:
            self.path.unlink(missing_ok=True)
            self._closed = True

    def __enter__(self) -> "StreamingWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # ------------------------------------------------------------------ feeder
    def _run(self, work: Callable, *args) -> None:
        """Does ``work`` now, or queues it for the feeder thread (``background``)."""
        if self._closed:
            raise SevenZipWriteError(f"{self.path}: archive already closed")
        if self._queue is None:
            work(*args)
            return
        self._raise_feeder_error()
        try:
            self._queue.put_nowait((work, args))
        except queue.Full:
            with self._cores.producer_waiting():
                self._queue.put((work, args))

    def _no_open_entry(self) -> None:
        if self._open_entry is not None:
            raise SevenZipWriteError(f"{self.path}: {self._open_entry.name} is still open")

    def _run_piece(self, work: Callable, data: bytes, *args) -> None:
        """Like :meth:`_run` for a piece of a streamed entry: waits while more than
        :data:`QUEUED_BYTES` are queued (or the feeder failed)."""
        if self._queue is not None:
            if self._queued > QUEUED_BYTES:       # only this thread adds to it
                # the core is given back and taken again outside the lock, which the
                # feeder needs to count pieces done
                with self._cores.producer_waiting(), self._queued_cond:
                    while self._queued > QUEUED_BYTES and self._feeder_error is None and not self._aborting:
                        self._queued_cond.wait(0.5)
            with self._queued_cond:
                self._queued += len(data)
        self._run(work, data, *args)

    def _piece_done(self, size: int) -> None:
        if self._queue is not None:
            with self._queued_cond:
                self._queued -= size
                self._queued_cond.notify_all()

    def _feed_loop(self) -> None:
        assert self._queue is not None
        while (item := self._queue.get()) is not None:
            if self._feeder_error is not None or self._aborting:
                continue                      # drain: nothing more goes in after a failure
            work, args = item
            try:
                work(*args)
            except BaseException as exc:
                self._feeder_error = exc
                with self._queued_cond:
                    self._queued_cond.notify_all()

    def _stop_feeder(self) -> None:
        if self._feeder is None or self._queue is None:
            return
        if self._aborting:                    # drop what is still queued
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        self._queue.put(None)
        self._feeder.join()
        self._feeder = None
        self._raise_feeder_error()

    def _raise_feeder_error(self) -> None:
        if self._feeder_error is not None:
            error = self._feeder_error
            raise SevenZipWriteError(f"{self.path}: could not add a file: "
                                     f"{type(error).__name__}: {error}") from error

    # ------------------------------------------------------------------ streamed entries
    def _entry_begin(self, head: bytes, entry: "EntryStream") -> None:
        """A long entry: a folder of its own, begun where the output stands now."""
        self._finish_folder()
        entry.mark = (len(self._folders), len(self._files))
        entry.record = self._start(entry.name, entry.mtime_ns, entry.mode)
        entry.method = self._choose(entry.name, head[:PROBE_SIZE])
        self._entry_piece(head, entry)

    def _entry_piece(self, data: bytes, entry: "EntryStream") -> None:
        try:
            if not entry.dropped:
                self._feed(entry.record, data, entry.method)
        finally:
            self._piece_done(len(data))

    def _entry_discard(self, entry: "EntryStream") -> None:
        """Everything of ``entry`` goes: its folder's blocks are dropped and the archive
        is cut back to where the folder began."""
        entry.dropped = True
        if entry.mark is None:
            return
        folders, files = entry.mark
        if self._current is not None:          # the entry's own folder: the last one
            self._current.cancel()
            self._current = None
        self._output.drain()                   # the folders before it, written whole
        offset = self._offset - sum(folder.pack_size for folder in self._folders[folders:])
        del self._folders[folders:]
        del self._files[files:]
        self._fh.seek(offset)
        self._fh.truncate()
        self._offset = offset

    # ------------------------------------------------------------------ entries
    def _start(self, arcname: str, mtime_ns: int, mode: int) -> _FileRecord:
        if self._closed:
            raise SevenZipWriteError(f"{self.path}: archive already closed")
        name = arcname.replace("\\", "/").lstrip("/")
        if not name:
            raise ValueError("empty archive name")
        record = _FileRecord(name, filetime(mtime_ns), attributes(mode))
        self._files.append(record)
        return record

    def _choose(self, arcname: str, head: bytes) -> str:
        return COPY if self.method == COPY or (self.detect_stored and is_precompressed(arcname, head)) \
            else LZMA2

    def _feed(self, record: _FileRecord, data: bytes, method: str) -> None:
        if self._aborting:                   # abort() stops a background file midway
            raise SevenZipWriteError(f"{self.path}: aborted")
        if not data:
            return
        if record.folder is None:
            encoder = self._folder(method)
            record.folder = len(self._folders) - 1
            encoder.record.files.append(record)
        record.size += len(data)
        record.crc = zlib.crc32(data, record.crc)
        self._current.write(data)

    def _folder(self, method: str) -> _FolderEncoder:
        if self._current is not None and self._current.record.method == method:
            return self._current
        self._finish_folder()
        iv = os.urandom(AES_BLOCK) if self._password is not None else None
        record = _FolderRecord(method, iv)
        self._folders.append(record)
        self._current = _FolderEncoder(record, self._write, self._output,
                                       self._pool if method == LZMA2 else None, self._encode,
                                       self._block_size, self._key if self._password is not None else None)
        return self._current

    def _finish_folder(self, parts: int = 1) -> None:
        if self._current is not None:
            encoder, self._current = self._current, None
            encoder.finish(parts)

    def _key(self) -> bytes:
        assert self._key_future is not None
        return self._key_future.result()

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._offset += len(data)

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ header
    def _next_header(self) -> bytes:
        """The header, or with a password the EncodedHeader pointing at its packed copy."""
        if not self._files:
            return b""
        header = self._header()
        if self._password is None:
            return header
        iv = os.urandom(AES_BLOCK)
        packed = lzma.compress(header, format=lzma.FORMAT_RAW, filters=[HEADER_FILTER])
        aes = _AesStream(self._key(), iv)
        encrypted = aes.update(packed) + aes.finish()
        pack_pos = self._offset - START_HEADER_SIZE
        self._write(encrypted)
        folder = _FolderRecord(LZMA2, iv, unpack_size=len(header), coded_size=len(packed),
                               pack_size=len(encrypted))
        return (bytes([K_ENCODED_HEADER]) + _pack_info(pack_pos, [folder])
                + _unpack_info([folder], HEADER_FILTER["dict_size"], folder_crcs=[zlib.crc32(header)])
                + bytes([K_END]))

    def _header(self) -> bytes:
        return _archive_header(self._files, self._folders)


class EntryStream:
    """One file of a :class:`StreamingWriter` written piece by piece (see ``open_entry``).

    Used from the producer's thread; with a background writer the pieces are queued
    for the feeder thread (at most :data:`QUEUED_BYTES` at a time)."""

    def __init__(self, writer: StreamingWriter, name: str, mtime_ns: int, mode: int, hold: int):
        self.name, self.mtime_ns, self.mode = name, mtime_ns, mode
        self._writer = writer
        self._hold = hold                      # bytes kept in memory before a folder of its own
        self._held: list[bytes] = []
        self._held_size = 0
        self._streaming = False
        self._done = False
        # feeder-side state
        self.mark: Optional[tuple[int, int]] = None   # (folders, files) at its start
        self.record: Optional[_FileRecord] = None
        self.method = LZMA2
        self.dropped = False

    def write(self, data: bytes) -> None:
        if self._done:
            raise SevenZipWriteError(f"{self.name}: write after close")
        if not data:
            return
        data = bytes(data)
        writer = self._writer
        if self._streaming:
            writer._run_piece(writer._entry_piece, data, self)
            return
        self._held.append(data)
        self._held_size += len(data)
        if self._held_size > self._hold:
            head, self._held, self._held_size = b"".join(self._held), [], 0
            self._streaming = True
            writer._run_piece(writer._entry_begin, head, self)

    def _end(self) -> bool:
        """Ends the entry once (False when it had ended already) and frees the writer."""
        if self._done:
            return False
        self._done = True
        self._writer._open_entry = None
        return True

    def close(self) -> None:
        """The entry is complete (a short one is added now, whole)."""
        if self._end() and not self._streaming:
            data, self._held = b"".join(self._held), []
            self._writer.add_bytes(self.name, data, self.mtime_ns, self.mode)

    def discard(self) -> None:
        """Nothing of this entry stays in the archive."""
        if not self._end():
            return
        writer = self._writer
        self._held = []
        if self._streaming:
            try:
                writer._run(writer._entry_discard, self)
            except SevenZipWriteError:
                pass        # the archive failed or was aborted already: it will never be whole


# ---------------------------------------------------------------------------- header

def _archive_header(files: list[_FileRecord], folders: list[_FolderRecord]) -> bytes:
    """The (plain) header of an archive of ``files`` packed in ``folders``, in order."""
    out = bytearray([K_HEADER])
    if folders:
        out += bytes([K_MAIN_STREAMS_INFO])
        out += _pack_info(0, folders)
        out += _unpack_info(folders, DICT_SIZE)
        out += _substreams_info(folders)
        out += bytes([K_END])
    out += _files_info(files)
    out += bytes([K_END])
    return bytes(out)


def _pack_info(pack_pos: int, folders: list[_FolderRecord]) -> bytes:
    return (bytes([K_PACK_INFO]) + number(pack_pos) + number(len(folders)) + bytes([K_SIZE])
            + b"".join(number(f.pack_size) for f in folders) + bytes([K_END]))


def _unpack_info(folders: list[_FolderRecord], dict_size: int, folder_crcs: Optional[list[int]] = None) -> bytes:
    out = bytearray([K_UNPACK_INFO, K_FOLDER]) + number(len(folders)) + b"\x00"
    for folder in folders:
        out += _folder_coders(folder, dict_size)
    out += bytes([K_CODERS_UNPACK_SIZE])
    for folder in folders:
        if folder.iv is not None:
            out += number(folder.coded_size)          # AES output = compressor input
        out += number(folder.unpack_size)
    if folder_crcs is not None:
        out += bytes([K_CRC]) + _digests(folder_crcs)
    out += bytes([K_END])
    return bytes(out)


def _folder_coders(folder: _FolderRecord, dict_size: int) -> bytes:
    """Coders in 7-Zip's order: 7zAES first (it reads the packed stream), then the
    (de)compressor, whose input is bound to AES's output."""
    if folder.method == LZMA2:
        inner = _coder(METHOD_LZMA2, bytes([_lzma2_dict_prop(dict_size)]))
    else:
        inner = _coder(METHOD_COPY)
    if folder.iv is None:
        return number(1) + inner
    # two coders; bind pair: coder 1's input (in-stream 1) <- coder 0's output (out-stream 0)
    return number(2) + _coder(METHOD_AES, aes_properties(folder.iv)) + inner + number(1) + number(0)


def _substreams_info(folders: list[_FolderRecord]) -> bytes:
    out = bytearray([K_SUBSTREAMS_INFO, K_NUM_UNPACK_STREAM])
    out += b"".join(number(len(f.files)) for f in folders)
    sizes = [rec.size for f in folders for rec in f.files[:-1]]
    if sizes:
        out += bytes([K_SIZE]) + b"".join(number(s) for s in sizes)
    out += bytes([K_CRC]) + _digests([rec.crc for f in folders for rec in f.files])
    out += bytes([K_END])
    return bytes(out)


def _files_info(records: list[_FileRecord]) -> bytes:
    # Empty files have no stream and may sit anywhere in the list; they go last
    # because py7zr (our reader) mis-numbers the files of a folder when an empty
    # file sits between them and the archive has several folders.
    files = [r for r in records if r.folder is not None] + [r for r in records if r.folder is None]
    out = bytearray([K_FILES_INFO]) + number(len(files))
    empty = [rec.folder is None for rec in files]
    if any(empty):
        out += _property(K_EMPTY_STREAM, bit_vector(empty))
        out += _property(K_EMPTY_FILE, bit_vector([True] * sum(empty)))   # files, not folders
    names = b"".join(rec.name.encode("utf-16-le") + b"\x00\x00" for rec in files)
    out += _property(K_NAME, b"\x00" + names)
    out += _property(K_MTIME, b"\x01\x00" + b"".join(struct.pack("<Q", r.mtime) for r in files))
    out += _property(K_WIN_ATTRIBUTES, b"\x01\x00" + b"".join(struct.pack("<I", r.attrib) for r in files))
    out += bytes([K_END])
    return bytes(out)


def _start_header(next_offset: int, next_header: bytes) -> bytes:
    """The 32 bytes at offset 0: where the (end) header is, its size and CRC."""
    start = struct.pack("<QQI", next_offset - START_HEADER_SIZE if next_header else 0,
                        len(next_header), zlib.crc32(next_header))
    return SIGNATURE + FORMAT_VERSION + struct.pack("<I", zlib.crc32(start)) + start


def _coder(method_id: bytes, props: bytes = b"") -> bytes:
    flags = len(method_id) | (0x20 if props else 0)
    return bytes([flags]) + method_id + (number(len(props)) + props if props else b"")


def _property(prop_id: int, data: bytes) -> bytes:
    return bytes([prop_id]) + number(len(data)) + data


# ---------------------------------------------------------------------------- one-call API

def write_archive(files: Iterable[tuple[Path, str]], out: Path, password: Optional[str] = None, *,
                  method: str = LZMA2, threads: int = 2, block_size: int = BLOCK_SIZE) -> None:
    """Write ``(path, arcname)`` pairs into the 7z archive ``out``."""
    with StreamingWriter(out, password, method=method, threads=threads,
                         block_size=block_size) as archive:
        for path, arcname in files:
            archive.add_file(path, arcname)


@dataclass(frozen=True)
class StoredFile:
    """A file of a Copy archive (:func:`write_stored`) whose size and CRC-32 are known
    before it is written: its bytes (``data``) or the file holding them (``path``)."""
    name: str
    size: int
    crc: int
    mtime_ns: int
    mode: int = 0o644
    data: Optional[bytes] = None
    path: Optional[Path] = None


def write_stored(out: BinaryIO, files: list[StoredFile]) -> tuple[str, int]:
    """Write a plain Copy archive of ``files`` to ``out`` in one sequential pass; its
    SHA-256 (hex) and size.

    Why not :class:`StreamingWriter`: that learns sizes and CRCs while writing, so its
    start header is written last, at offset 0, and a hash of the archive needs another
    read.  Here everything is known first (the bundle's outer archive: the header and the
    payload), so the archive is written front to back, and a second thread hashes each
    piece as it is written (the very bytes written: a file read twice could differ).  A
    file that does not hold ``size`` bytes, or a name 7z cannot carry (a NUL, a lone
    surrogate), is refused (the archive is then not whole: the caller removes it)."""
    records, offset = [], 0
    folder = _FolderRecord(COPY, None)
    for item in files:
        if (item.data is None) == (item.path is None) or (item.data is not None and len(item.data) != item.size):
            raise ValueError(f"{item.name!r}: give its data or its path, and its size")
        if not item.name or "\x00" in item.name or not item.name.isprintable() and _unencodable(item.name):
            raise ValueError(f"{item.name!r}: not a name a 7z archive can hold")
        record = _FileRecord(item.name, filetime(item.mtime_ns), attributes(item.mode), item.size, item.crc,
                             folder=0 if item.size else None)
        records.append(record)
        if item.size:
            folder.files.append(record)
            offset += item.size
    folder.unpack_size = folder.coded_size = folder.pack_size = offset
    end = _archive_header(records, [folder] if folder.files else [])
    start = _start_header(START_HEADER_SIZE + offset, end)
    digest = hashlib.sha256()
    pieces: queue.Queue = queue.Queue(maxsize=4)         # at most 4 chunks waiting for the hash

    def hash_pieces() -> None:
        while (piece := pieces.get()) is not None:
            digest.update(piece)

    def write(piece: bytes) -> None:
        out.write(piece)
        pieces.put(piece)

    hasher = threading.Thread(target=hash_pieces, name="7z-hash", daemon=True)
    hasher.start()
    try:
        write(start)
        for item in files:
            if item.data is not None:
                write(item.data)
                continue
            left = item.size
            with open(item.path, "rb") as fh:
                while left and (chunk := fh.read(min(READ_CHUNK, left))):
                    write(chunk)
                    left -= len(chunk)
            if left:
                raise SevenZipWriteError(f"{item.path}: {left} bytes fewer than the {item.size} announced")
        write(end)
    finally:
        pieces.put(None)
        hasher.join()
    return digest.hexdigest(), START_HEADER_SIZE + offset + len(end)


def _unencodable(name: str) -> bool:
    try:
        name.encode("utf-16-le")
    except UnicodeEncodeError:
        return True
    return False
