"""A minimal registry hive (regf) *writer*, so tests can build real hive files.

Tests of the offline registry reader need hives with known content, and real
Windows hives cannot be committed (they are large and full of someone's machine).
This writes the real layout: a 4096-byte base block with its XOR checksum, hive
bins in 4096-byte multiples, allocated cells with negative sizes, key nodes (nk),
hash-leaf subkey lists (lh; or lf/li on request) split under an index root (ri)
past ``split`` subkeys, value lists, values (vk) with inline data for 4 bytes or
less, big-data records (db) for values over 16344 bytes, and one shared security
record (sk, an empty self-relative descriptor) that every key points to, as
hivex and Windows expect when they add keys.  No class names.

The tree is a nested dict: a dict entry is a subkey, anything else a value whose
type follows its Python type (str -> REG_SZ, int -> REG_DWORD or REG_QWORD when it
does not fit, bytes -> REG_BINARY, list -> REG_MULTI_SZ); wrap it in :class:`Typed`
to choose (REG_EXPAND_SZ, a small REG_QWORD, REG_NONE ...).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from platforms import winregistry as wr

BASE_BLOCK = 4096
HBIN_HEADER = 32
SEGMENT = 16344
# Self-relative SECURITY_DESCRIPTOR: revision 1, control SE_SELF_RELATIVE | SE_DACL_PRESENT,
# no owner, group, SACL or DACL (a NULL DACL).
_EMPTY_DESCRIPTOR = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 0)


@dataclass(frozen=True)
class Typed:
    """A value with an explicit registry type."""

    reg_type: int
    data: Any


def encode_value(value: Any) -> tuple[int, bytes]:
    """(registry type, raw bytes) for a tree value."""
    if isinstance(value, Typed):
        return value.reg_type, _encode_as(value.reg_type, value.data)
    if isinstance(value, bool):
        raise TypeError("booleans have no registry type")
    if isinstance(value, int):
        reg_type = wr.REG_DWORD if 0 <= value < 2 ** 32 else wr.REG_QWORD
        return reg_type, _encode_as(reg_type, value)
    if isinstance(value, str):
        return wr.REG_SZ, _encode_as(wr.REG_SZ, value)
    if isinstance(value, (bytes, bytearray)):
        return wr.REG_BINARY, bytes(value)
    if isinstance(value, (list, tuple)):
        return wr.REG_MULTI_SZ, _encode_as(wr.REG_MULTI_SZ, value)
    raise TypeError(f"no registry type for {type(value).__name__}")


def _encode_as(reg_type: int, data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if reg_type in (wr.REG_SZ, wr.REG_EXPAND_SZ, wr.REG_LINK):
        return (data + "\x00").encode("utf-16-le")
    if reg_type == wr.REG_MULTI_SZ:
        return "".join(s + "\x00" for s in data).encode("utf-16-le") + b"\x00\x00"
    if reg_type == wr.REG_DWORD:
        return struct.pack("<I", data)
    if reg_type == wr.REG_DWORD_BIG_ENDIAN:
        return struct.pack(">I", data)
    if reg_type == wr.REG_QWORD:
        return struct.pack("<Q", data)
    raise TypeError(f"cannot encode {data!r} as type {reg_type}")


def plain(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The tree as :class:`DictRegistryReader` wants it: ``Typed`` values decoded."""
    out: dict[str, Any] = {}
    for name, entry in tree.items():
        if isinstance(entry, Mapping):
            out[name] = plain(entry)
        else:
            reg_type, raw = encode_value(entry)
            out[name] = wr.decode_value(reg_type, raw)
    return out


def name_hash(name: str) -> int:
    """The lh hash: H = 37 * H + code of each upper-cased character, 32 bits."""
    value = 0
    for char in name.upper():
        value = (value * 37 + ord(char)) & 0xFFFFFFFF
    return value


def _name_bytes(name: str) -> tuple[bytes, bool]:
    """(stored name, compressed?): Latin-1 when every character fits, else UTF-16LE."""
    try:
        return name.encode("latin-1"), True
    except UnicodeEncodeError:
        return name.encode("utf-16-le"), False


class _Bins:
    """Cell allocator over hive bins; offsets are relative to the first bin."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.bin_start = 0
        self.bin_end = 0
        self.used = 0

    def alloc(self, payload_size: int) -> int:
        size = (payload_size + 4 + 7) & ~7
        if self.used + size > self.bin_end:
            self._close_bin()
            bin_size = (size + HBIN_HEADER + 4095) // 4096 * 4096
            self.bin_start = len(self.data)
            self.bin_end = self.bin_start + bin_size
            self.data += b"\x00" * bin_size
            struct.pack_into("<4sII", self.data, self.bin_start, b"hbin", self.bin_start, bin_size)
            self.used = self.bin_start + HBIN_HEADER
        offset = self.used
        struct.pack_into("<i", self.data, offset, -size)
        self.used += size
        return offset

    def put(self, offset: int, payload: bytes) -> None:
        self.data[offset + 4:offset + 4 + len(payload)] = payload

    def cell(self, payload: bytes) -> int:
        offset = self.alloc(len(payload))
        self.put(offset, payload)
        return offset

    def _close_bin(self) -> None:
        """Mark the rest of the current bin as one free cell (positive size)."""
        if self.bin_end > self.used:
            struct.pack_into("<i", self.data, self.used, self.bin_end - self.used)
        self.used = self.bin_end

    def finish(self) -> bytes:
        self._close_bin()
        return bytes(self.data)


class HiveWriter:
    """Builds one hive.  ``list_kind`` picks the subkey list record (lh, lf or li);
    ``split`` is how many subkeys one list holds before an ri index is used;
    ``minor_version`` 3 turns big-data records off, as in NT 4 hives."""

    def __init__(self, list_kind: str = "lh", split: int = 500, minor_version: int = 5,
                 root_name: str = "CMI-CreateHive{2A7FB991-7BBE-4F9D-B91E-7CB51D4737F5}"):
        if list_kind not in ("lh", "lf", "li"):
            raise ValueError("list_kind must be lh, lf or li")
        self.list_kind = list_kind
        self.split = split
        self.minor_version = minor_version
        self.root_name = root_name

    def build(self, tree: Mapping[str, Any], sequence: tuple[int, int] = (1, 1)) -> bytes:
        bins = _Bins()
        self._security = bins.alloc(24 + len(_EMPTY_DESCRIPTOR))
        self._key_count = 0
        root = self._key(bins, self.root_name, tree, parent=0, flags=0x2C)
        bins.put(self._security, struct.pack(
            "<2sHIIII", b"sk", 0, self._security, self._security, self._key_count,
            len(_EMPTY_DESCRIPTOR)) + _EMPTY_DESCRIPTOR)
        body = bins.finish()
        return self._base_block(root, len(body), sequence) + body

    def write(self, path: Path | str, tree: Mapping[str, Any]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.build(tree))
        return path

    # records ----------------------------------------------------------------------
    def _key(self, bins: _Bins, name: str, tree: Mapping[str, Any], parent: int, flags: int) -> int:
        raw_name, compressed = _name_bytes(name)
        if compressed:
            flags |= 0x20
        offset = bins.alloc(76 + len(raw_name))
        self._key_count += 1
        children = sorted(((n, e) for n, e in tree.items() if isinstance(e, Mapping)),
                          key=lambda item: item[0].upper())
        values = [(n, e) for n, e in tree.items() if not isinstance(e, Mapping)]
        child_offsets = [(n, self._key(bins, n, sub, offset, 0)) for n, sub in children]
        subkey_list = self._subkey_list(bins, child_offsets) if child_offsets else 0xFFFFFFFF
        value_list = self._value_list(bins, values) if values else 0xFFFFFFFF
        nk = struct.pack(
            "<2sHQ" + "I" * 15 + "HH", b"nk", flags, 0x01D9F1A2B3C4D5E6, 0, parent,
            len(children), 0, subkey_list, 0xFFFFFFFF, len(values), value_list,
            self._security, 0xFFFFFFFF, 0, 0, 0, 0, 0, len(raw_name), 0,
        ) + raw_name
        bins.put(offset, nk)
        return offset

    def _subkey_list(self, bins: _Bins, children: list[tuple[str, int]]) -> int:
        chunks = [children[i:i + self.split] for i in range(0, len(children), self.split)]
        leaves = [self._leaf(bins, chunk) for chunk in chunks]
        if len(leaves) == 1:
            return leaves[0]
        return bins.cell(struct.pack("<2sH", b"ri", len(leaves))
                         + b"".join(struct.pack("<I", leaf) for leaf in leaves))

    def _leaf(self, bins: _Bins, chunk: list[tuple[str, int]]) -> int:
        kind = self.list_kind
        body = struct.pack("<2sH", kind.encode(), len(chunk))
        for name, offset in chunk:
            if kind == "li":
                body += struct.pack("<I", offset)
            elif kind == "lh":
                body += struct.pack("<II", offset, name_hash(name))
            else:
                hint = name[:4].encode("latin-1", errors="replace").ljust(4, b"\x00")
                body += struct.pack("<I4s", offset, hint)
        return bins.cell(body)

    def _value_list(self, bins: _Bins, values: list[tuple[str, Any]]) -> int:
        offsets = [self._value(bins, name, value) for name, value in values]
        return bins.cell(b"".join(struct.pack("<I", o) for o in offsets))

    def _value(self, bins: _Bins, name: str, value: Any) -> int:
        reg_type, data = encode_value(value)
        raw_name, compressed = _name_bytes(name)
        if len(data) <= 4:
            size_field = len(data) | 0x80000000
            data_offset = struct.unpack("<I", data.ljust(4, b"\x00"))[0]
        elif len(data) > SEGMENT and self.minor_version > 3:
            size_field, data_offset = len(data), self._big_data(bins, data)
        else:
            size_field, data_offset = len(data), bins.cell(data)
        vk = struct.pack("<2sHIIIHH", b"vk", len(raw_name), size_field, data_offset,
                         reg_type, 1 if compressed else 0, 0) + raw_name
        return bins.cell(vk)

    @staticmethod
    def _big_data(bins: _Bins, data: bytes) -> int:
        segments = [bins.cell(data[i:i + SEGMENT]) for i in range(0, len(data), SEGMENT)]
        segment_list = bins.cell(b"".join(struct.pack("<I", s) for s in segments))
        return bins.cell(struct.pack("<2sHII", b"db", len(segments), segment_list, 0))

    def _base_block(self, root: int, bins_size: int, sequence: tuple[int, int]) -> bytes:
        block = bytearray(BASE_BLOCK)
        struct.pack_into("<4sIIQIIIIIII", block, 0, b"regf", sequence[0], sequence[1],
                         0x01D9F1A2B3C4D5E6, 1, self.minor_version, 0, 1, root, bins_size, 1)
        block[48:48 + 40] = "\\SystemRoot\\System32\\Config\\X".encode("utf-16-le")[:40]
        checksum = 0
        for (word,) in struct.iter_unpack("<I", bytes(block[:508])):
            checksum ^= word
        if checksum == 0:
            checksum = 1
        elif checksum == 0xFFFFFFFF:
            checksum = 0xFFFFFFFE
        struct.pack_into("<I", block, 508, checksum)
        return bytes(block)


def write_hive(path: Path | str, tree: Mapping[str, Any], **options: Any) -> Path:
    """Write ``tree`` as a hive file at ``path`` (parents created)."""
    return HiveWriter(**options).write(path, tree)


def write_volume_hives(root: Path | str, registry: Mapping[str, Any], **options: Any) -> None:
    """Write ``registry["HKLM"]["SOFTWARE"]`` / ``["SYSTEM"]`` (a DictRegistryReader-style
    tree) as ``<root>/Windows/System32/config/SOFTWARE`` / ``SYSTEM``."""
    hklm = registry.get("HKLM") or registry.get("HKEY_LOCAL_MACHINE") or {}
    config = Path(root, "Windows", "System32", "config")
    for hive_name, subtree in hklm.items():
        if hive_name.upper() in wr.HIVE_FILES and isinstance(subtree, Mapping):
            write_hive(config / hive_name.upper(), subtree, **options)
