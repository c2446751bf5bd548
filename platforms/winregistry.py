"""Read-only Windows registry readers, all answering :class:`platforms.base.RegistryReader`.

Three ways to read the same questions:

* :class:`WinRegReader` asks the live registry through ``winreg`` (Windows only);
* :class:`HiveRegistryReader` reads the hive *files* of a mounted Windows volume
  (``<root>/Windows/System32/config/SOFTWARE`` ...) with a small regf parser, so
  ``--root`` can examine a disk image from Linux;
* :class:`DictRegistryReader` answers from a nested dict, for unit tests.

Keys are full paths (``HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion``), looked
up case-insensitively as Windows does.  A missing key or value, an unreadable or
corrupt hive, or no registry at all gives ``None`` / empty results: a diagnostics
tool must keep going with what it can read, so no reader here raises.

Values come back as ``winreg`` gives them: REG_SZ / REG_EXPAND_SZ / REG_LINK ->
``str`` (unexpanded), REG_MULTI_SZ -> ``list[str]``, REG_DWORD / REG_QWORD ->
``int``, REG_BINARY and everything else -> ``bytes``.

The regf layout followed here is the one in the public format descriptions
(libyal's "Windows NT Registry File (REGF) format" and M. Suhanov's "Windows
registry file format specification"): a 4096-byte base block, then hive bins of
cells; key nodes (nk), subkey lists (lf/lh/li and the ri index of lists), value
lists, values (vk) and big-data records (db) for values over 16344 bytes.
Transaction logs (``.LOG1``/``.LOG2``) are not replayed: a hive copied from a
running system may lag its logs by a few seconds of writes, which :attr:`RegfHive.dirty`
reports.
"""
from __future__ import annotations

import itertools
import mmap
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from .base import open_fact

# --------------------------------------------------------------------------- types

REG_NONE = 0
REG_SZ = 1
REG_EXPAND_SZ = 2
REG_BINARY = 3
REG_DWORD = 4
REG_DWORD_BIG_ENDIAN = 5
REG_LINK = 6
REG_MULTI_SZ = 7
REG_QWORD = 11

# Root key spellings -> the short name used internally; values name winreg's constants.
ROOT_KEYS = {
    "HKLM": "HKEY_LOCAL_MACHINE", "HKEY_LOCAL_MACHINE": "HKEY_LOCAL_MACHINE",
    "HKCU": "HKEY_CURRENT_USER", "HKEY_CURRENT_USER": "HKEY_CURRENT_USER",
    "HKU": "HKEY_USERS", "HKEY_USERS": "HKEY_USERS",
    "HKCR": "HKEY_CLASSES_ROOT", "HKEY_CLASSES_ROOT": "HKEY_CLASSES_ROOT",
    "HKCC": "HKEY_CURRENT_CONFIG", "HKEY_CURRENT_CONFIG": "HKEY_CURRENT_CONFIG",
}

# Errors a malformed hive, a vanished file or a foreign value can raise while reading;
# every public method turns them into "not there".
_READ_ERRORS = (OSError, ValueError, TypeError, KeyError, IndexError, struct.error,
                UnicodeError, OverflowError)


def fold(name: str) -> str:
    """The form two registry names are compared in.

    Windows upper-cases names one character at a time; ``str.lower`` is the closest
    Python match (``casefold`` would wrongly make "ß" equal "ss").
    """
    return name.lower()


def split_key(key: str) -> tuple[str, list[str]]:
    """``HKLM\\A\\B`` -> (``HKEY_LOCAL_MACHINE``, [``A``, ``B``]); unknown root -> ("", parts)."""
    parts = [p for p in key.replace("/", "\\").split("\\") if p]
    if not parts:
        return "", []
    return ROOT_KEYS.get(parts[0].upper(), ""), parts[1:]


def decode_value(reg_type: int, data: bytes) -> Any:
    """Raw registry bytes -> the Python value ``winreg`` would give for ``reg_type``."""
    if reg_type in (REG_SZ, REG_EXPAND_SZ, REG_LINK):
        return _utf16(data).split("\x00", 1)[0]
    if reg_type == REG_MULTI_SZ:
        items = _utf16(data).split("\x00")
        while items and items[-1] == "":
            items.pop()
        return items
    if reg_type == REG_DWORD:
        return int.from_bytes(data[:4].ljust(4, b"\x00"), "little")
    if reg_type == REG_DWORD_BIG_ENDIAN:
        return int.from_bytes(data[:4].rjust(4, b"\x00"), "big")
    if reg_type == REG_QWORD:
        return int.from_bytes(data[:8].ljust(8, b"\x00"), "little")
    return bytes(data)


def _utf16(data: bytes) -> str:
    if len(data) % 2:
        data = data[:-1]
    return bytes(data).decode("utf-16-le", errors="replace")


_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)


def filetime_to_datetime(filetime: int) -> Optional[datetime]:
    """A Windows FILETIME (100 ns ticks since 1601-01-01 UTC) as an aware UTC datetime;
    None for 0 or values past year 9999."""
    if not filetime or filetime < 0:
        return None
    try:
        return _FILETIME_EPOCH + timedelta(microseconds=filetime // 10)
    except OverflowError:
        return None


def control_set_name(current: Any) -> str:
    """The ``ControlSet00N`` that ``HKLM\\SYSTEM\\Select`` value ``Current`` names;
    ``CurrentControlSet`` is a link to it that only exists while Windows runs."""
    if isinstance(current, int) and 0 < current < 1000:
        return f"ControlSet{current:03d}"
    return "ControlSet001"


def _is_current_control_set(root: str, parts: Sequence[str]) -> bool:
    return (root == "HKEY_LOCAL_MACHINE" and len(parts) >= 2 and fold(parts[0]) == "system"
            and fold(parts[1]) == "currentcontrolset")


def _ci_lookup(mapping: Mapping[str, Any], name: str) -> tuple[Optional[str], Any]:
    """(real name, entry) of ``name`` in ``mapping``, compared as Windows does."""
    if name in mapping:
        return name, mapping[name]
    wanted = fold(name)
    for real, entry in mapping.items():
        if fold(real) == wanted:
            return real, entry
    return None, None


# --------------------------------------------------------------------------- dict


class DictRegistryReader:
    """A registry made of nested dicts, for tests.

    A dict entry is a subkey, any other entry is a value::

        {"HKLM": {"SOFTWARE": {"Microsoft": {"Windows NT": {"CurrentVersion": {
            "CurrentBuild": "22631", "UBR": 2861}}}}}}

    Root keys may be written short (``HKLM``) or long (``HKEY_LOCAL_MACHINE``).
    ``HKLM\\SYSTEM\\CurrentControlSet`` follows ``SYSTEM\\Select\\Current`` as on Windows,
    unless the tree spells out a ``CurrentControlSet`` key itself.
    """

    def __init__(self, tree: Mapping[str, Any]):
        self.tree: dict[str, Mapping[str, Any]] = {}
        for root, sub in tree.items():
            long_name = ROOT_KEYS.get(root.upper())
            if long_name and isinstance(sub, Mapping):
                self.tree[long_name] = sub

    def _node(self, key: str) -> Optional[Mapping[str, Any]]:
        root, parts = split_key(key)
        if _is_current_control_set(root, parts) and self._walk(root, parts[:2]) is None:
            current = self.value(r"HKLM\SYSTEM\Select", "Current")
            parts = [parts[0], control_set_name(current), *parts[2:]]
        return self._walk(root, parts)

    def _walk(self, root: str, parts: Sequence[str]) -> Optional[Mapping[str, Any]]:
        node: Any = self.tree.get(root)
        for part in parts:
            if not isinstance(node, Mapping):
                return None
            _, node = _ci_lookup(node, part)
        return node if isinstance(node, Mapping) else None

    def value(self, key: str, name: str) -> Any:
        node = self._node(key)
        if node is None:
            return None
        _, entry = _ci_lookup(node, name)
        return None if isinstance(entry, Mapping) else entry

    def values(self, key: str) -> dict[str, Any]:
        node = self._node(key) or {}
        return {k: v for k, v in node.items() if not isinstance(v, Mapping)}

    def subkeys(self, key: str) -> list[str]:
        node = self._node(key) or {}
        return [k for k, v in node.items() if isinstance(v, Mapping)]

    def exists(self, key: str) -> bool:
        return self._node(key) is not None


# --------------------------------------------------------------------------- live


class WinRegReader:
    """The live registry through ``winreg``, always in its 64-bit view.

    ``KEY_WOW64_64KEY`` matters: a 32-bit build of jcdiag on 64-bit Windows would
    otherwise be redirected to ``WOW6432Node`` and miss the agent's keys.
    ``winreg_module`` is for tests; by default ``winreg`` is imported on first use, and
    off Windows every answer is empty.
    """

    def __init__(self, winreg_module: Any = None):
        self._winreg = winreg_module

    def _module(self) -> Any:
        if self._winreg is None:
            try:
                import winreg  # type: ignore[import-not-found]
            except ImportError:
                return None
            self._winreg = winreg
        return self._winreg

    def _open(self, key: str) -> tuple[Any, Any]:
        """(winreg module, open handle) or raises OSError."""
        mod = self._module()
        if mod is None:
            raise OSError("winreg is only available on Windows")
        root, parts = split_key(key)
        if not root:
            raise OSError(f"unknown root key in {key!r}")
        access = mod.KEY_READ | getattr(mod, "KEY_WOW64_64KEY", 0)
        return mod, mod.OpenKey(getattr(mod, root), "\\".join(parts), 0, access)

    def value(self, key: str, name: str) -> Any:
        try:
            mod, handle = self._open(key)
            try:
                data, reg_type = mod.QueryValueEx(handle, name)
            finally:
                mod.CloseKey(handle)
            return self._convert(data, reg_type)
        except _READ_ERRORS:
            return None

    def values(self, key: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        try:
            mod, handle = self._open(key)
            try:
                count = mod.QueryInfoKey(handle)[1]
                for index in range(count):
                    name, data, reg_type = mod.EnumValue(handle, index)
                    found[name] = self._convert(data, reg_type)
            finally:
                mod.CloseKey(handle)
        except _READ_ERRORS:
            pass
        return found

    def subkeys(self, key: str) -> list[str]:
        names: list[str] = []
        try:
            mod, handle = self._open(key)
            try:
                for index in range(mod.QueryInfoKey(handle)[0]):
                    names.append(mod.EnumKey(handle, index))
            finally:
                mod.CloseKey(handle)
        except _READ_ERRORS:
            pass
        return names

    def exists(self, key: str) -> bool:
        try:
            mod, handle = self._open(key)
            mod.CloseKey(handle)
            return True
        except _READ_ERRORS:
            return False

    @staticmethod
    def _convert(data: Any, reg_type: int) -> Any:
        """winreg's answers, made to match :func:`decode_value` where winreg differs."""
        if isinstance(data, bytes) and reg_type in (REG_DWORD_BIG_ENDIAN, REG_LINK):
            return decode_value(reg_type, data)
        if data is None and reg_type == REG_NONE:
            return b""
        return data


# --------------------------------------------------------------------------- regf


class HiveError(Exception):
    """The file is not a registry hive this parser can read."""


BASE_BLOCK_SIZE = 0x1000        # hive bins start here; every offset is relative to it
BIG_DATA_SEGMENT = 16344        # bytes of value data per big-data segment
MAX_VALUE_BYTES = 16 * 1024 * 1024   # larger values are refused, to keep memory bounded
MAX_VALUES = 1 << 20            # values read per key at most
MAX_VALUES_BYTES = 64 * 1024 * 1024  # value data decoded by one values() call at most
MAX_SUBKEYS = 1 << 20           # subkey entries scanned per key (CBS Packages has tens of thousands)
_NK_COMP_NAME = 0x0020          # key name is Latin-1, not UTF-16LE
_VK_COMP_NAME = 0x0001          # value name is Latin-1, not UTF-16LE
_DATA_INLINE = 0x80000000       # data (<= 4 bytes) lives in the vk's offset field
_NO_OFFSET = 0xFFFFFFFF
INDEX_FROM = 32                 # keys with this many subkeys get a name -> offset index
INDEX_BUDGET = 250_000          # names indexed per hive at most (a few tens of MB)


@dataclass(frozen=True)
class _KeyNode:
    offset: int
    name: str
    subkey_count: int
    subkey_list: int
    value_count: int
    value_list: int


@dataclass(frozen=True)
class _ValueRecord:
    name: str
    size_field: int
    data_offset: int
    reg_type: int


class RegfHive:
    """One regf hive file, read through ``mmap`` so a hive of hundreds of MB costs
    page cache, not process memory.  Paths are lists of key names below the hive root.

    Subkey lists are scanned, not binary-searched (a hive edited by other tools may
    not keep them sorted); keys with many subkeys (CBS ``Packages`` has tens of
    thousands) get a name index on first look-up so walking each of them stays
    linear overall.  The index is capped at :data:`INDEX_BUDGET` names per hive.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._file = open_fact(self.path)
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size < BASE_BLOCK_SIZE + 32:
                raise HiveError(f"{self.path}: too small for a registry hive")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except BaseException:
            self._file.close()
            raise
        self._size = size
        self._index: dict[int, dict[str, int]] = {}
        self._indexed = 0
        base = self._map[:512]
        if base[:4] != b"regf":
            self.close()
            raise HiveError(f"{self.path}: no 'regf' signature")
        seq1, seq2 = struct.unpack_from("<II", base, 4)
        self.minor_version = struct.unpack_from("<I", base, 24)[0]
        self.root_offset = struct.unpack_from("<I", base, 36)[0]
        checksum = 0
        for (word,) in struct.iter_unpack("<I", base[:508]):
            checksum ^= word
        stored = struct.unpack_from("<I", base, 508)[0]
        self.checksum_ok = stored == checksum or (checksum in (0, 0xFFFFFFFF) and stored in (1, 0xFFFFFFFE))
        # Sequence numbers differ while a write is under way: logs hold newer data.
        self.dirty = seq1 != seq2 or not self.checksum_ok

    def close(self) -> None:
        try:
            self._map.close()
        except (AttributeError, ValueError, BufferError):
            pass
        self._file.close()

    def __enter__(self) -> "RegfHive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # cells -------------------------------------------------------------------------
    def _cell(self, offset: int, limit: int = 1024 * 1024) -> Optional[bytes]:
        """The data of the allocated cell at ``offset`` (relative to the hive bins), at
        most ``limit`` bytes of it: a corrupt size field cannot make a huge copy."""
        if offset == _NO_OFFSET or offset % 8:
            return None
        start = BASE_BLOCK_SIZE + offset
        if start + 4 > self._size:
            return None
        size = struct.unpack_from("<i", self._map, start)[0]
        if size >= 0:                      # positive = free cell: nothing live here
            return None
        end = start - size
        if end > self._size or -size < 8:
            return None
        return self._map[start + 4:min(end, start + 4 + limit)]

    def _key_node(self, offset: int) -> Optional[_KeyNode]:
        cell = self._cell(offset, 76 + 0xFFFF)
        if cell is None or len(cell) < 76 or cell[:2] != b"nk":
            return None
        flags = struct.unpack_from("<H", cell, 2)[0]
        subkey_count, = struct.unpack_from("<I", cell, 20)
        subkey_list, = struct.unpack_from("<I", cell, 28)
        value_count, value_list = struct.unpack_from("<II", cell, 36)
        name_len, = struct.unpack_from("<H", cell, 72)
        raw = cell[76:76 + name_len]
        name = raw.decode("latin-1") if flags & _NK_COMP_NAME else _utf16(raw)
        return _KeyNode(offset, name, subkey_count, subkey_list, value_count, value_list)

    def _subkey_offsets(self, list_offset: int, depth: int = 0) -> Iterator[int]:
        """Key node offsets of a subkey list: lf/lh (offset, hint), li (offset), or an
        ri index whose elements are such lists (an ri never points to an ri)."""
        cell = self._cell(list_offset, 4 + 8 * 0xFFFF)
        if cell is None or len(cell) < 4:
            return
        sig = cell[:2]
        count, = struct.unpack_from("<H", cell, 2)
        if sig in (b"lf", b"lh"):
            count = min(count, (len(cell) - 4) // 8)
            for index in range(count):
                yield struct.unpack_from("<I", cell, 4 + 8 * index)[0]
        elif sig == b"li" or (sig == b"ri" and depth == 0):
            count = min(count, (len(cell) - 4) // 4)
            lists: set[int] = set()
            for index in range(count):
                element, = struct.unpack_from("<I", cell, 4 + 4 * index)
                if sig == b"li":
                    yield element
                elif element not in lists:               # the same list twice adds nothing
                    lists.add(element)
                    yield from self._subkey_offsets(element, depth + 1)

    def _offsets(self, node: _KeyNode) -> Iterator[int]:
        """The subkey offsets of ``node``: no more than it says it has, and at most
        :data:`MAX_SUBKEYS` (a crafted ri of 65,535 lists of 65,535 entries would
        otherwise make one look-up scan four billion keys)."""
        return itertools.islice(self._subkey_offsets(node.subkey_list), min(node.subkey_count, MAX_SUBKEYS))

    def _children(self, node: _KeyNode) -> Iterator[_KeyNode]:
        if not node.subkey_count:
            return
        for offset in self._offsets(node):
            child = self._key_node(offset)
            if child is not None:
                yield child

    def _child(self, node: _KeyNode, name: str) -> Optional[_KeyNode]:
        wanted = fold(name)
        index = self._index.get(node.offset)
        if index is None and node.subkey_count >= INDEX_FROM \
                and self._indexed + node.subkey_count <= INDEX_BUDGET:
            index = {}
            for offset in self._offsets(node):
                child = self._key_node(offset)
                if child is not None:
                    index.setdefault(fold(child.name), offset)
            self._index[node.offset] = index
            self._indexed += len(index)
        if index is not None:
            offset = index.get(wanted)
            return None if offset is None else self._key_node(offset)
        return next((c for c in self._children(node) if fold(c.name) == wanted), None)

    def _find(self, path: Sequence[str]) -> Optional[_KeyNode]:
        node = self._key_node(self.root_offset)
        for part in path:
            if node is None:
                return None
            node = self._child(node, part)
        return node

    def _value_records(self, node: _KeyNode) -> Iterator[_ValueRecord]:
        if not node.value_count:
            return
        cell = self._cell(node.value_list, 4 * min(node.value_count, MAX_VALUES))
        if cell is None:
            return
        for index in range(min(node.value_count, len(cell) // 4)):
            vk = self._cell(struct.unpack_from("<I", cell, 4 * index)[0], 20 + 0xFFFF)
            if vk is None or len(vk) < 20 or vk[:2] != b"vk":
                continue
            name_len, size_field, data_offset, reg_type, flags = struct.unpack_from("<HIIIH", vk, 2)
            raw = vk[20:20 + name_len]
            name = raw.decode("latin-1") if flags & _VK_COMP_NAME else _utf16(raw)
            yield _ValueRecord(name, size_field, data_offset, reg_type)

    def _data(self, record: _ValueRecord) -> Optional[bytes]:
        size = record.size_field & 0x7FFFFFFF
        if record.size_field & _DATA_INLINE:
            return struct.pack("<I", record.data_offset)[:min(size, 4)]
        if size == 0:
            return b""
        if size > MAX_VALUE_BYTES:
            return None
        cell = self._cell(record.data_offset, size)
        if cell is None:
            return None
        if size > BIG_DATA_SEGMENT and cell[:2] == b"db" and self.minor_version > 3:
            return self._big_data(cell, size)
        return cell[:size] if len(cell) >= size else None

    def _big_data(self, db: bytes, size: int) -> Optional[bytes]:
        """Concatenate the segments of a db record, each holding up to 16344 bytes."""
        if len(db) < 8:
            return None
        count, list_offset = struct.unpack_from("<HI", db, 2)
        segments = self._cell(list_offset, 4 * count)
        if segments is None:
            return None
        parts: list[bytes] = []
        remaining = size
        for index in range(min(count, len(segments) // 4)):
            segment = self._cell(struct.unpack_from("<I", segments, 4 * index)[0], BIG_DATA_SEGMENT)
            if segment is None:
                return None
            chunk = segment[:min(remaining, BIG_DATA_SEGMENT)]
            parts.append(chunk)
            remaining -= len(chunk)
            if remaining <= 0:
                break
        return b"".join(parts) if remaining <= 0 else None

    # public ------------------------------------------------------------------------
    def has_key(self, path: Sequence[str]) -> bool:
        return self._find(path) is not None

    def subkey_names(self, path: Sequence[str]) -> list[str]:
        node = self._find(path)
        return [child.name for child in self._children(node)] if node else []

    def value(self, path: Sequence[str], name: str) -> Any:
        node = self._find(path)
        if node is None:
            return None
        wanted = fold(name)
        for record in self._value_records(node):
            if fold(record.name) == wanted:
                data = self._data(record)
                return None if data is None else decode_value(record.reg_type, data)
        return None

    def values(self, path: Sequence[str]) -> dict[str, Any]:
        node = self._find(path)
        found: dict[str, Any] = {}
        if node is None:
            return found
        budget = MAX_VALUES_BYTES          # many values may point at one big cell: decode it once each, within this
        for record in self._value_records(node):
            data = self._data(record)
            if data is None:
                continue
            budget -= len(data)
            if budget < 0:
                break
            found[record.name] = decode_value(record.reg_type, data)
        return found


# The HKLM keys backed by a hive file in Windows\System32\config.
HIVE_FILES = ("SOFTWARE", "SYSTEM", "SAM", "SECURITY")
CONFIG_DIR = ("Windows", "System32", "config")


def find_path_ci(root: Path, parts: Sequence[str]) -> Optional[Path]:
    """``root/parts...`` matched case-insensitively, component by component, as on
    NTFS; None when any component is missing.  The exact spelling is tried first so
    the common case costs no directory listing."""
    current = root
    for part in parts:
        exact = current / part
        if exact.exists():
            current = exact
            continue
        try:
            match = next((e for e in current.iterdir() if fold(e.name) == fold(part)), None)
        except OSError:
            return None
        if match is None:
            return None
        current = match
    return current


class HiveRegistryReader:
    """The ``HKLM`` hives of a Windows volume mounted at ``root``, read offline.

    ``HKLM\\SOFTWARE\\...`` is read from ``<root>/Windows/System32/config/SOFTWARE``,
    ``HKLM\\SYSTEM\\...`` from ``.../SYSTEM``, with ``CurrentControlSet`` mapped to the
    ``ControlSet00N`` that ``SYSTEM\\Select\\Current`` names (there is no
    CurrentControlSet on disk: the kernel makes it at boot).  Other roots (HKCU, HKU)
    answer empty.  Hives are opened on first use and kept open; :meth:`close` them.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._hives: dict[str, Optional[RegfHive]] = {}
        self.errors: dict[str, str] = {}     # hive name -> why it could not be read

    def hive(self, name: str) -> Optional[RegfHive]:
        """The open hive ``name`` (SOFTWARE, SYSTEM ...), or None if absent/unreadable."""
        name = name.upper()
        if name not in self._hives:
            self._hives[name] = None
            path = find_path_ci(self.root, CONFIG_DIR + (name,))
            if path is not None and path.is_file():
                try:
                    self._hives[name] = RegfHive(path)
                except (HiveError, *_READ_ERRORS) as exc:
                    self.errors[name] = str(exc)
        return self._hives[name]

    def dirty_hives(self) -> list[str]:
        """Names of opened hives whose transaction logs hold unapplied writes."""
        return [name for name, hive in self._hives.items() if hive is not None and hive.dirty]

    def close(self) -> None:
        for hive in self._hives.values():
            if hive is not None:
                hive.close()
        self._hives.clear()

    def __enter__(self) -> "HiveRegistryReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _locate(self, key: str) -> tuple[Optional[RegfHive], list[str]]:
        root, parts = split_key(key)
        if root != "HKEY_LOCAL_MACHINE" or not parts or parts[0].upper() not in HIVE_FILES:
            return None, []
        name = parts[0].upper()
        hive = self.hive(name)
        rest = parts[1:]
        if hive is not None and _is_current_control_set(root, parts):
            rest = [control_set_name(hive.value(["Select"], "Current")), *rest[1:]]
        return hive, rest

    def value(self, key: str, name: str) -> Any:
        try:
            hive, path = self._locate(key)
            return hive.value(path, name) if hive else None
        except _READ_ERRORS:
            return None

    def values(self, key: str) -> dict[str, Any]:
        try:
            hive, path = self._locate(key)
            return hive.values(path) if hive else {}
        except _READ_ERRORS:
            return {}

    def subkeys(self, key: str) -> list[str]:
        try:
            hive, path = self._locate(key)
            return hive.subkey_names(path) if hive else []
        except _READ_ERRORS:
            return []

    def exists(self, key: str) -> bool:
        try:
            hive, path = self._locate(key)
            return hive.has_key(path) if hive else False
        except _READ_ERRORS:
            return False
