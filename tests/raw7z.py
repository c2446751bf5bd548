"""A minimal raw 7z writer for crafted archives: encoded headers listing millions of entries,
solid blocks whose entries carry any attributes, a compressed payload entry.  py7zr and our own
writer refuse to make such files, which is the point: they are what an attacker sends."""
import lzma, struct, zlib, io
from py7zr.archiveinfo import write_uint64 as _wu

def u64(n):
    b = io.BytesIO(); _wu(b, n); return b.getvalue()

def files_info(names, emptystream=None, emptyfile=None, attributes=None, anti=None):
    n = len(names)
    out = io.BytesIO()
    out.write(b"\x05" + u64(n))
    def bits(v):
        ba = bytearray((len(v) + 7) // 8)
        for i, x in enumerate(v):
            if x: ba[i // 8] |= 0x80 >> (i % 8)
        return bytes(ba)
    if emptystream is not None:
        b = bits(emptystream); out.write(b"\x0e" + u64(len(b)) + b)
    if emptyfile is not None:
        b = bits(emptyfile); out.write(b"\x0f" + u64(len(b)) + b)
    if anti is not None:
        b = bits(anti); out.write(b"\x10" + u64(len(b)) + b)
    nb = b"\x00" + b"".join(x.encode("utf-16-le", "surrogatepass") + b"\0\0" for x in names)
    out.write(b"\x11" + u64(len(nb)) + nb)
    if attributes is not None:
        ab = b"\x01" + b"\x00" + b"".join(struct.pack("<I", a) for a in attributes)
        # all-defined flag 1 then external 0
        out.write(b"\x15" + u64(len(ab)) + ab)
    out.write(b"\x00")
    return out.getvalue()

def lzma2_raw(data, preset=9):
    c = lzma.LZMACompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": 1 << 24}])
    return c.compress(data) + c.flush()

def archive(packed: bytes, header: bytes, encode_header=True):
    """packed: raw data after the signature header; header: plain header bytes (starting 0x01)."""
    body = packed
    if encode_header:
        comp = lzma2_raw(header)
        packpos = len(body)
        body += comp
        # dict prop byte for 16MiB: 2<<(p/2+11) = 2^24 -> p=24
        folder = b"\x01" + b"\x21" + b"\x21" + b"\x01" + bytes([24])
        nh = (b"\x17" + b"\x06" + u64(packpos) + u64(1) + b"\x09" + u64(len(comp)) + b"\x00"
              + b"\x07" + b"\x0b" + u64(1) + b"\x00" + folder + b"\x0c" + u64(len(header))
              + b"\x0a\x01" + struct.pack("<I", zlib.crc32(header)) + b"\x00" + b"\x00")
    else:
        nh = header
    sh = struct.pack("<QQI", len(body), len(nh), zlib.crc32(nh))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(sh)) + sh + body + nh

def empty_files_header(names, dirs=None, attributes=None, anti=None):
    n = len(names)
    es = [True] * n
    ef = [not (dirs and dirs[i]) for i in range(n)]
    return b"\x01" + files_info(names, es, ef, attributes, anti) + b"\x00"

def solid_archive(out_path, entries, preset=0, attributes=None, encode_header=False):
    """entries: list of (name, iterable_of_chunks). One LZMA2 folder (solid), names as given."""
    import hashlib
    c = lzma.LZMACompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": 1 << 20}])
    sizes, crcs = [], []
    with open(out_path, "wb") as f:
        f.write(b"\0" * 32)
        packed = 0
        for name, chunks in entries:
            size = crc = 0
            for ch in chunks:
                size += len(ch); crc = zlib.crc32(ch, crc)
                d = c.compress(ch); f.write(d); packed += len(d)
            sizes.append(size); crcs.append(crc)
        d = c.flush(); f.write(d); packed += len(d)
        total = sum(sizes)
        folder = b"\x01" + b"\x21" + b"\x21" + b"\x01" + bytes([20 - 2 * 0])  # prop 16 -> 1MiB? compute below
        # dict 1MiB = 2^20 = 2<<(p/2+11) -> p = 16
        folder = b"\x01" + b"\x21" + b"\x21" + b"\x01" + bytes([16])
        ms = (b"\x04" + b"\x06" + u64(0) + u64(1) + b"\x09" + u64(packed) + b"\x00"
              + b"\x07" + b"\x0b" + u64(1) + b"\x00" + folder + b"\x0c" + u64(total) + b"\x00"
              + b"\x08" + b"\x0d" + u64(len(sizes)) + b"\x09" + b"".join(u64(s) for s in sizes[:-1])
              + b"\x0a\x01" + b"".join(struct.pack("<I", x) for x in crcs) + b"\x00" + b"\x00")
        hdr = b"\x01" + ms + files_info([n for n, _ in entries], attributes=attributes) + b"\x00"
        if encode_header:
            comp = lzma2_raw(hdr)
            f.write(comp)
            folder2 = b"\x01" + b"\x21" + b"\x21" + b"\x01" + bytes([24])
            nh = (b"\x17" + b"\x06" + u64(packed) + u64(1) + b"\x09" + u64(len(comp)) + b"\x00"
                  + b"\x07" + b"\x0b" + u64(1) + b"\x00" + folder2 + b"\x0c" + u64(len(hdr))
                  + b"\x0a\x01" + struct.pack("<I", zlib.crc32(hdr)) + b"\x00" + b"\x00")
            body_len = packed + len(comp)
        else:
            nh = hdr; body_len = packed
        f.write(nh)
        sh = struct.pack("<QQI", body_len, len(nh), zlib.crc32(nh))
        f.seek(0)
        f.write(b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(sh)) + sh)
    return sizes
