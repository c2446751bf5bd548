"""LZMA2 blocks for the 7z writer: 7-Zip's own LZMA encoder where it is installed, liblzma otherwise.

Why two encoders: compression is most of a collection's CPU time, and on agent logs
liblzma (Python's ``lzma``) at the settings of ``7z -mx1`` runs at about 40 MB/s per
core against 7-Zip's 46 to 50; the whole pipeline may take at most 1.5 times as long
as ``7z a -mx1 -mmt2``, and liblzma alone already took 1.3 to 1.5 times.  pylzma
(PyPI, C; it carries the encoder of Igor Pavlov's LZMA SDK, the one inside 7-Zip)
encodes as fast as 7-Zip does and releases the GIL while it works.

pylzma encodes LZMA, not LZMA2, so a block is cut into LZMA2 chunks here: each chunk
is one independent LZMA stream (control byte "dictionary reset + new properties +
state reset", then its unpacked and packed sizes), which LZMA2 allows at any chunk.
A chunk holds at most 64 KiB packed and 2 MiB unpacked, so the input is cut where the
last chunk's ratio says about 60 KiB of output will come out, and a chunk that comes
out too big is encoded again in a shorter cut.  Data that LZMA cannot shrink goes into
stored chunks.  What decoders see is a plain LZMA2 stream: 7-Zip, p7zip, py7zr and
liblzma decode it.  The resets cost about 2-4 % of size against one long stream.

Without pylzma (``pip install 'jcdiag[fast]'``), or with ``JCDIAG_LZMA_ENCODER=liblzma``,
blocks come from liblzma with :data:`LZMA2_FILTER`: the same decoded bytes, somewhat
slower and about 1 % larger.
"""
from __future__ import annotations

import ctypes
import lzma
import os
import sys
from typing import Callable

try:                                   # optional: the 'fast' extra, and inside every executable
    import pylzma as _pylzma
except ImportError:                    # pragma: no cover - depends on the installation
    _pylzma = None

__all__ = ["DICT_SIZE", "LZMA2_FILTER", "encoder_name", "block_encoder", "liblzma_block",
           "sdk_block", "LZMA2Error"]

#: The dictionary both encoders use (the coder property says it): 128 KiB, half of
#: ``7z -mx1``'s, because the match finder's tables grow with it and on generated agent
#: logs the half cost 4.5% less compression time for 0.6% more bytes (a quarter: 5% less
#: for 3.2% more).
DICT_SIZE = 1 << 17

#: liblzma's settings: fast mode, HC4 match finder, the same dictionary and a short
#: nice length as ``7z -mx1`` runs, with a shallower search (measured on generated
#: agent logs against ``7z -mx1``: size 1.03 at about 40 MB/s per core).
LZMA2_FILTER: dict = {"id": lzma.FILTER_LZMA2, "preset": 1, "dict_size": DICT_SIZE,
                      "mode": lzma.MODE_FAST, "mf": lzma.MF_HC4, "nice_len": 32, "depth": 8}

#: 7-Zip's LZMA encoder at ``-mx1`` (fast mode, hash chain, lc3 lp0 pb2), but with 28 fast
#: bytes where ``-mx1`` has 32: compression is three quarters of a collect's CPU time, and
#: on generated agent logs 28 cost 5% less of it for 0.27% more bytes (24: 8% less for
#: 1.5% more); the bundle may be 5% larger than 7-Zip's, it was 1.8%.
_SDK_OPTIONS = {"dictionary": DICT_SIZE.bit_length() - 1, "fastBytes": 28, "algorithm": 0,
                "literalContextBits": 3, "literalPosBits": 0, "posBits": 2, "eos": 0,
                "multithreading": 0}
_SDK_HEADER = 5                        # pylzma writes the 5 LZMA properties bytes first

_MAX_PACKED = 1 << 16                  # LZMA2: packed bytes of one chunk
_MAX_UNPACKED = 1 << 21                # LZMA2: unpacked bytes of one LZMA chunk
_MAX_STORED = 1 << 16                  # LZMA2: bytes of one stored chunk
#: What a cut aims for: under the limit by enough that the next chunk rarely comes out
#: too big and is encoded twice (62 KiB re-encoded 0.64% of 1 GB of generated hosts, 4%
#: of one agent log; 60 KiB none, for 0.11% more output).
_AIM_PACKED = 60 << 10
_FIRST_CUT = 384 << 10
_MIN_CUT = 4 << 10
_LZMA_RESET_ALL = 0xE0                 # LZMA chunk: dictionary reset, new properties, state reset
_STORED_RESET = 0x01                   # stored chunk with dictionary reset


class LZMA2Error(RuntimeError):
    """An encoder produced something that is not a valid LZMA2 block."""


def encoder_name() -> str:
    """``"7-zip"`` (pylzma) or ``"liblzma"``: which encoder :func:`block_encoder` gives."""
    choice = os.environ.get("JCDIAG_LZMA_ENCODER", "").strip().lower()
    if choice == "liblzma" or _pylzma is None:
        return "liblzma"
    return "7-zip"


def block_encoder() -> Callable[[bytes | bytearray], bytes]:
    """The function that turns one block into LZMA2 chunks (no end marker), so that blocks
    concatenate into one stream."""
    if encoder_name() == "7-zip":
        _reuse_encoder_memory()
        return sdk_block
    return liblzma_block


_MALLOC_TUNED = False
#: glibc ``mallopt`` parameters: allocations above the threshold are mmapped, free heap
#: above the trim threshold goes back to the kernel.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _reuse_encoder_memory() -> None:
    """Lets glibc reuse the encoder's buffers instead of mapping them anew for every chunk.

    pylzma creates an encoder per call (a match finder of about 2 MB per chunk of a few
    hundred KB); glibc mapped and unmapped those each time, and the page faults and the
    shared address-space lock cost about 0.07 CPU-s of system time per 56 MB, more with
    two threads encoding at once.  Fixed thresholds of 8 and 16 MiB keep such buffers in
    each thread's heap (at most 16 MiB of free heap kept per arena).  Only on glibc; a
    failure changes nothing but speed."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 8 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 16 << 20)
    except (OSError, AttributeError, ValueError):
        pass


def liblzma_block(data: bytes | bytearray) -> bytes:
    """One block as an independent raw LZMA2 stream from liblzma, without its end marker."""
    compressor = lzma.LZMACompressor(format=lzma.FORMAT_RAW, filters=[LZMA2_FILTER])
    packed = compressor.compress(data) + compressor.flush()
    if not packed or packed[-1] != 0:
        raise LZMA2Error("liblzma produced an LZMA2 stream without its end marker")
    return packed[:-1]


def sdk_block(data: bytes | bytearray) -> bytes:
    """One block as LZMA2 chunks, each an independent LZMA stream from 7-Zip's encoder.

    Runs in the writer's worker threads: pylzma releases the GIL while it encodes."""
    if _pylzma is None:
        raise LZMA2Error("pylzma is not installed")
    view = memoryview(data)
    out: list[bytes] = []
    pos, total = 0, len(view)
    cut = _FIRST_CUT
    while pos < total:
        piece = view[pos:pos + min(cut, _MAX_UNPACKED)]
        coded = _pylzma.compress(bytes(piece), **_SDK_OPTIONS)
        packed = len(coded) - _SDK_HEADER
        if packed >= len(piece):                       # LZMA cannot shrink it: store it
            out.append(_stored(piece))
            pos += len(piece)
            continue
        if packed > _MAX_PACKED:                       # too much for one chunk: a shorter cut
            cut = max(_MIN_CUT, len(piece) * _AIM_PACKED // packed * 15 // 16)
            continue
        props = coded[0]
        if props >= 9 * 5 * 5 or (props % 9) + (props // 9 % 5) > 4:
            raise LZMA2Error(f"the LZMA encoder wrote properties {props:#x}, which LZMA2 cannot carry")
        size, plen = len(piece) - 1, packed - 1
        out.append(bytes((_LZMA_RESET_ALL | size >> 16, size >> 8 & 0xFF, size & 0xFF,
                          plen >> 8, plen & 0xFF, props)))
        out.append(coded[_SDK_HEADER:])
        pos += len(piece)
        cut = max(_MIN_CUT, len(piece) * _AIM_PACKED // packed) if packed else _MAX_UNPACKED
    return b"".join(out)


def _stored(piece: memoryview) -> bytes:
    """Stored LZMA2 chunks (64 KiB at most each), each resetting the dictionary, so the
    LZMA chunk after them (which resets everything itself) is independent too."""
    out = []
    for start in range(0, len(piece), _MAX_STORED):
        part = piece[start:start + _MAX_STORED]
        out.append(bytes((_STORED_RESET, (len(part) - 1) >> 8, (len(part) - 1) & 0xFF)))
        out.append(bytes(part))
    return b"".join(out)
