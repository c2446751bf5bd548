"""Registry readers: the offline regf parser on hives written by tests/hivewriter.py and by
hivex (an independent writer), the dict reader, and WinRegReader against a fake winreg."""
from __future__ import annotations

import random
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platforms import winregistry as wr
from platforms.winregistry import (DictRegistryReader, HiveRegistryReader, RegfHive,
                                   WinRegReader, decode_value, split_key)
from tests.hivewriter import HiveWriter, Typed, name_hash, plain, write_hive, write_volume_hives

FIXTURES = Path(__file__).parent / "fixtures" / "windows" / "hives"

ALL_TYPES = {
    "Sz": "Windows 10 Pro",
    "ExpandSz": Typed(wr.REG_EXPAND_SZ, r"%SystemRoot%\system32"),
    "MultiSz": ["\\??\\C:\\Windows\\Temp\\a.tmp", "", "second"],
    "Dword": 0x70,
    "DwordMax": 0xFFFFFFFF,
    "DwordBE": Typed(wr.REG_DWORD_BIG_ENDIAN, 0x01020304),
    "SmallQword": Typed(wr.REG_QWORD, 7),
    "BigQword": 0x01D9F1A2B3C4D5E6,
    "Binary": b"\x00\x01\x02\x03\x04\x05\x06",
    "ShortBinary": b"\xAA\xBB",
    "EmptySz": "",
    "None": Typed(wr.REG_NONE, b""),
    "": "the default value",
}


def read_hive(tmp_path: Path, tree: dict, **options) -> RegfHive:
    return RegfHive(write_hive(tmp_path / "HIVE", tree, **options))


# --------------------------------------------------------------------------- decoding


def test_decode_value_matches_winreg_conventions():
    assert decode_value(wr.REG_SZ, "abc\x00junk".encode("utf-16-le")) == "abc"
    assert decode_value(wr.REG_SZ, b"a\x00b") == "a"              # odd length tolerated
    assert decode_value(wr.REG_MULTI_SZ, "a\x00b\x00\x00".encode("utf-16-le")) == ["a", "b"]
    assert decode_value(wr.REG_MULTI_SZ, b"") == []
    assert decode_value(wr.REG_DWORD, b"\x2d\x0b\x00\x00") == 2861
    assert decode_value(wr.REG_DWORD, b"\x01") == 1                # short data padded
    assert decode_value(wr.REG_DWORD_BIG_ENDIAN, b"\x00\x00\x0b\x2d") == 2861
    assert decode_value(wr.REG_QWORD, struct.pack("<Q", 2 ** 40)) == 2 ** 40
    assert decode_value(wr.REG_BINARY, b"\x01\x02") == b"\x01\x02"
    assert decode_value(99, b"\x01") == b"\x01"


def test_split_key_normalises_roots():
    assert split_key(r"HKLM\SOFTWARE\X") == ("HKEY_LOCAL_MACHINE", ["SOFTWARE", "X"])
    assert split_key(r"hkey_local_machine\\SOFTWARE\\") == ("HKEY_LOCAL_MACHINE", ["SOFTWARE"])
    assert split_key(r"HKCU\Software") == ("HKEY_CURRENT_USER", ["Software"])
    assert split_key(r"BOGUS\X") == ("", ["X"])
    assert split_key("") == ("", [])


def test_filetime_conversion():
    assert wr.filetime_to_datetime(0) is None
    assert wr.filetime_to_datetime(116444736000000000).isoformat() == "1970-01-01T00:00:00+00:00"
    assert wr.filetime_to_datetime(2 ** 63 - 1) is None


# --------------------------------------------------------------------------- dict reader


def test_dict_reader_is_case_insensitive_and_never_raises():
    reader = DictRegistryReader({"HKEY_LOCAL_MACHINE": {"SOFTWARE": {"JumpCloud": {
        "JumpCloud Agent": {"ConfigFile": r"C:\x.conf"}, "Flag": 1}}}})
    assert reader.value(r"hklm\software\jumpcloud\JUMPCLOUD AGENT", "configfile") == r"C:\x.conf"
    assert reader.values(r"HKLM\SOFTWARE\JumpCloud") == {"Flag": 1}
    assert reader.subkeys(r"HKLM\SOFTWARE\JumpCloud") == ["JumpCloud Agent"]
    assert reader.exists(r"HKLM\SOFTWARE\JumpCloud\JumpCloud Agent")
    assert not reader.exists(r"HKLM\SOFTWARE\JumpCloud\Flag")       # a value is not a key
    assert reader.value(r"HKLM\SOFTWARE\JumpCloud", "JumpCloud Agent") is None
    assert reader.value(r"HKLM\SOFTWARE\Nope", "x") is None
    assert reader.values(r"HKCU\Software") == {}
    assert reader.subkeys("") == []


def test_dict_reader_follows_current_control_set_like_windows():
    system = {"Select": {"Current": 2}, "ControlSet001": {"Services": {"a": {"Start": 4}}},
              "ControlSet002": {"Services": {"a": {"Start": 2}}}}
    reader = DictRegistryReader({"HKLM": {"SYSTEM": system}})
    assert reader.value(r"HKLM\SYSTEM\CurrentControlSet\Services\a", "Start") == 2
    spelled_out = DictRegistryReader({"HKLM": {"SYSTEM": {**system, "CurrentControlSet": {
        "Services": {"a": {"Start": 3}}}}}})
    assert spelled_out.value(r"HKLM\SYSTEM\CurrentControlSet\Services\a", "Start") == 3


# --------------------------------------------------------------------------- regf parser


def test_every_value_type_round_trips(tmp_path):
    with read_hive(tmp_path, {"Key": ALL_TYPES}) as hive:
        assert hive.checksum_ok and not hive.dirty
        assert hive.values(["Key"]) == plain({"Key": ALL_TYPES})["Key"]
        assert hive.value(["key"], "DWORD") == 0x70
        assert hive.value(["Key"], "") == "the default value"
        assert hive.value(["Key"], "Missing") is None


def test_small_data_is_inline_in_the_value_record(tmp_path):
    with read_hive(tmp_path, {"Key": {"Dword": 5, "Two": b"\x01\x02", "Seven": b"1234567"}}) as hive:
        records = {r.name: r for r in hive._value_records(hive._find(["Key"]))}
    assert records["Dword"].size_field == 0x80000004
    assert records["Two"].size_field == 0x80000002
    assert records["Seven"].size_field == 7                         # 7 bytes need a data cell


def test_big_data_values_use_db_records(tmp_path):
    blob = bytes(random.Random(4).randrange(256) for _ in range(40000))
    text = "JumpCloud " * 2000                                     # 40000 bytes as UTF-16
    with read_hive(tmp_path, {"Key": {"Blob": blob, "Text": text}}) as hive:
        assert hive.value(["Key"], "Blob") == blob
        assert hive.value(["Key"], "Text") == text
        record = next(r for r in hive._value_records(hive._find(["Key"])) if r.name == "Blob")
        assert hive._cell(record.data_offset)[:2] == b"db"


def test_nt4_hives_keep_big_values_in_one_cell(tmp_path):
    blob = b"x" * 30000
    with read_hive(tmp_path, {"Key": {"Blob": blob}}, minor_version=3) as hive:
        assert hive.value(["Key"], "Blob") == blob


def test_many_subkeys_go_through_an_index_root(tmp_path):
    names = [f"Package_for_KB{5000000 + i}~31bf3856ad364e35~amd64~~10.0.1.{i}" for i in range(1201)]
    tree = {"Packages": {n: {"CurrentState": i} for i, n in enumerate(names)}}
    with read_hive(tmp_path, tree) as hive:
        node = hive._find(["Packages"])
        assert hive._cell(node.subkey_list)[:2] == b"ri"
        assert sorted(hive.subkey_names(["Packages"])) == sorted(names)
        assert hive.value(["packages", names[-1].upper()], "CurrentState") == 1200
        assert hive.value(["Packages", names[0]], "CurrentState") == 0


def test_walking_every_subkey_of_a_big_key_stays_linear(tmp_path, monkeypatch):
    """CBS Packages holds tens of thousands of subkeys; reading each by full path must not
    rescan its siblings every time (that took minutes on a real-size key)."""
    names = [f"Package_for_KB{4000000 + i}~31bf3856ad364e35~amd64~~1.0" for i in range(2000)]
    write_volume_hives(tmp_path, {"HKLM": {"SOFTWARE": {"CBS": {"Packages": {
        n: {"CurrentState": 0x70} for n in names}}}}})
    parsed = 0
    original = RegfHive._key_node

    def counting(self, offset):
        nonlocal parsed
        parsed += 1
        return original(self, offset)
    monkeypatch.setattr(RegfHive, "_key_node", counting)
    with HiveRegistryReader(tmp_path) as reader:
        packages = r"HKLM\SOFTWARE\CBS\Packages"
        states = [reader.value(packages + "\\" + n, "CurrentState") for n in reader.subkeys(packages)]
    assert states == [0x70] * len(names)
    assert parsed < 10 * len(names)            # a rescan per look-up would be ~ len(names) ** 2


def test_index_budget_exhausted_falls_back_to_scanning(tmp_path, monkeypatch):
    monkeypatch.setattr(wr, "INDEX_BUDGET", 10)
    tree = {"Big": {f"k{i}": {"v": i} for i in range(100)}}
    with read_hive(tmp_path, tree) as hive:
        assert hive.value(["Big", "K99"], "v") == 99
        assert hive._index == {}


@pytest.mark.parametrize("kind", ["lf", "li", "lh"])
def test_every_leaf_list_kind_is_read(tmp_path, kind):
    tree = {"Root": {f"Sub{i}": {"I": i} for i in range(12)}}
    with read_hive(tmp_path, tree, list_kind=kind, split=5) as hive:
        node = hive._find(["Root"])
        assert hive._cell(node.subkey_list)[:2] == b"ri"
        assert sorted(hive.subkey_names(["Root"])) == sorted(tree["Root"])
        assert hive.value(["Root", "sub11"], "i") == 11


def test_utf16_and_latin1_names(tmp_path):
    tree = {"Ωmega 日本": {"Wert ∑": 1, "Café": "é"}, "Café": {}}
    with read_hive(tmp_path, tree) as hive:
        assert sorted(hive.subkey_names([])) == ["Café", "Ωmega 日本"]
        assert hive.values(["ωMEGA 日本"]) == {"Wert ∑": 1, "Café": "é"}
        assert hive.value(["Ωmega 日本"], "WERT ∑") == 1
        assert hive.has_key(["CAFÉ"])


def test_lh_hash_follows_the_format(tmp_path):
    # H = 37 * H + upper-cased char, the way Windows fills lh lists.
    assert name_hash("a") == ord("A")
    assert name_hash("ab") == 37 * ord("A") + ord("B")


def test_hive_written_by_hivex_is_read():
    """A hive whose keys and values hivex wrote: the parser does not only read its own writer."""
    with RegfHive(FIXTURES / "hivex-written.hiv") as hive:
        cv = hive.values(["Microsoft", "Windows NT", "CurrentVersion"])
        assert cv["ProductName"] == "Windows 10 Pro"
        assert cv["CurrentBuild"] == "22631"
        assert cv["UBR"] == 2861
        assert cv["DisplayVersion"] == "23H2"
        assert isinstance(cv["InstallTime"], int)
        assert cv["BigBinary"] == bytes(i % 251 for i in range(3000))
        assert hive.subkey_names(["Many"]) == [f"Key{i:04d}" for i in range(40)]
        assert "Ωmega" in hive.subkey_names([])


def test_dirty_hive_is_reported(tmp_path):
    path = tmp_path / "SYSTEM"
    path.write_bytes(HiveWriter().build({"Select": {"Current": 1}}, sequence=(9, 8)))
    with RegfHive(path) as hive:
        assert hive.dirty and hive.checksum_ok
        assert hive.value(["Select"], "Current") == 1


def test_oversized_values_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(wr, "MAX_VALUE_BYTES", 1000)
    with read_hive(tmp_path, {"K": {"Blob": b"y" * 5000, "Ok": b"z" * 10}}) as hive:
        assert hive.value(["K"], "Blob") is None
        assert hive.values(["K"]) == {"Ok": b"z" * 10}


def test_a_corrupt_cell_size_cannot_cause_a_huge_read(tmp_path):
    data = bytearray(HiveWriter().build({"Key": {"v": 1}, "Pad": {"Blob": b"p" * 200_000}}))
    root = struct.unpack_from("<I", data, 36)[0]
    struct.pack_into("<i", data, 4096 + root, -(len(data) - 4096 - root) // 8 * 8)   # spans the file
    path = tmp_path / "HIVE"
    path.write_bytes(bytes(data))
    with RegfHive(path) as hive:
        assert len(hive._cell(root, 100)) == 100
        assert len(hive._cell(root)) <= 1024 * 1024
        assert hive.value(["Key"], "v") == 1             # the root nk itself is still readable


# --------------------------------------------------------------------------- volume reader

SOFTWARE = {"Microsoft": {"Windows NT": {"CurrentVersion": {"CurrentBuild": "22631"}}}}
SYSTEM = {
    "Select": {"Current": 2, "Default": 2, "Failed": 0, "LastKnownGood": 1},
    "ControlSet001": {"Control": {"ComputerName": {"ComputerName": {"ComputerName": "OLD-NAME"}}}},
    "ControlSet002": {"Control": {"ComputerName": {"ComputerName": {"ComputerName": "DESKTOP-7Q4KJ2M"}}}},
}


def test_volume_reader_maps_keys_to_hive_files(tmp_path):
    write_volume_hives(tmp_path, {"HKLM": {"SOFTWARE": SOFTWARE, "SYSTEM": SYSTEM}})
    with HiveRegistryReader(tmp_path) as reader:
        assert reader.value(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "CurrentBuild") == "22631"
        assert reader.value(r"HKEY_LOCAL_MACHINE\software\microsoft\windows nt\currentversion",
                            "currentbuild") == "22631"
        key = r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName"
        assert reader.value(key, "ComputerName") == "DESKTOP-7Q4KJ2M"   # Select\Current = 2
        assert reader.exists(r"HKLM\SOFTWARE") and reader.exists(r"HKLM\SYSTEM\Select")
        assert reader.subkeys(r"HKLM\SYSTEM") == ["ControlSet001", "ControlSet002", "Select"]
        assert reader.dirty_hives() == []
        assert reader.value(r"HKCU\Software\X", "Y") is None
        assert reader.value(r"HKLM\HARDWARE\DESCRIPTION", "X") is None


def test_volume_reader_without_select_uses_controlset001(tmp_path):
    write_volume_hives(tmp_path, {"HKLM": {"SYSTEM": {"ControlSet001": {"Services": {"x": {"Start": 2}}}}}})
    with HiveRegistryReader(tmp_path) as reader:
        assert reader.value(r"HKLM\SYSTEM\CurrentControlSet\Services\x", "Start") == 2


def test_volume_reader_finds_hive_files_whatever_their_case(tmp_path):
    config = tmp_path / "WINDOWS" / "system32" / "config"          # XP-style spelling
    write_hive(config / "software", SOFTWARE)
    with HiveRegistryReader(tmp_path) as reader:
        assert reader.value(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "CurrentBuild") == "22631"


def test_volume_reader_without_hives_answers_empty(tmp_path):
    reader = HiveRegistryReader(tmp_path)
    assert reader.value(r"HKLM\SOFTWARE\Microsoft", "x") is None
    assert reader.values(r"HKLM\SOFTWARE\Microsoft") == {}
    assert reader.subkeys(r"HKLM\SYSTEM") == []
    assert reader.exists(r"HKLM\SOFTWARE") is False


@pytest.mark.parametrize("content", [
    b"", b"regf", b"hbin" * 2000, b"regf" + b"\x00" * 5000,
    b"regf" + b"\xff" * 8188,
])
def test_volume_reader_survives_garbage_hives(tmp_path, content):
    config = tmp_path / "Windows" / "System32" / "config"
    config.mkdir(parents=True)
    (config / "SOFTWARE").write_bytes(content)
    reader = HiveRegistryReader(tmp_path)
    assert reader.value(r"HKLM\SOFTWARE\Microsoft", "x") is None
    assert reader.subkeys(r"HKLM\SOFTWARE") == []
    assert reader.values(r"HKLM\SOFTWARE") == {}
    reader.close()


FUZZ_TREE = {"Microsoft": {"Windows NT": {"CurrentVersion": {
    "ProductName": "Windows 10 Pro", "UBR": 2861, "Big": b"q" * 17000, "M": ["a", "b"]}}},
    "Many": {f"k{i}": {"v": i} for i in range(30)}}
FUZZ_HIVE = HiveWriter(split=8).build(FUZZ_TREE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(FUZZ_HIVE) - 1), st.integers(0, 255)),
                min_size=1, max_size=40))
def test_corrupted_hives_never_raise(flips):
    data = bytearray(FUZZ_HIVE)
    for position, byte in flips:
        data[position] = byte
    with tempfile.TemporaryDirectory() as tmp:
        write_hive_bytes = Path(tmp, "Windows", "System32", "config", "SOFTWARE")
        write_hive_bytes.parent.mkdir(parents=True)
        write_hive_bytes.write_bytes(bytes(data))
        with HiveRegistryReader(tmp) as reader:
            cv = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
            reader.values(cv)
            reader.value(cv, "Big")
            reader.exists(cv)
            for name in reader.subkeys(r"HKLM\SOFTWARE\Many"):
                reader.values(r"HKLM\SOFTWARE\Many" + "\\" + name)


# --------------------------------------------------------------------------- live reader


class FakeWinreg:
    """Just enough of ``winreg`` to exercise WinRegReader off Windows."""

    HKEY_LOCAL_MACHINE = "HKLM-handle"
    HKEY_CURRENT_USER = "HKCU-handle"
    KEY_READ = 0x20019
    KEY_WOW64_64KEY = 0x0100

    def __init__(self, tree: dict):
        self.tree = tree                  # {root handle: {path: {"values": {...}, "subkeys": [...]}}}
        self.opened: list[tuple[str, str, int]] = []
        self.closed = 0

    def OpenKey(self, root, sub_key, reserved, access):
        self.opened.append((root, sub_key, access))
        node = self.tree.get(root, {}).get(sub_key.lower())
        if node is None:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return node

    def CloseKey(self, handle):
        self.closed += 1

    def QueryValueEx(self, handle, name):
        for real, (data, reg_type) in handle["values"].items():
            if real.lower() == name.lower():
                return data, reg_type
        raise FileNotFoundError(2, "The system cannot find the file specified")

    def QueryInfoKey(self, handle):
        return len(handle["subkeys"]), len(handle["values"]), 0

    def EnumValue(self, handle, index):
        name, (data, reg_type) = list(handle["values"].items())[index]
        return name, data, reg_type

    def EnumKey(self, handle, index):
        return handle["subkeys"][index]


def fake_winreg() -> FakeWinreg:
    return FakeWinreg({"HKLM-handle": {
        r"software\microsoft\windows nt\currentversion": {
            "values": {"CurrentBuild": ("22631", wr.REG_SZ), "UBR": (2861, wr.REG_DWORD),
                       "BE": (b"\x00\x00\x00\x05", wr.REG_DWORD_BIG_ENDIAN),
                       "Link": ("\\Registry\\Machine\\X".encode("utf-16-le"), wr.REG_LINK),
                       "Nothing": (None, wr.REG_NONE)},
            "subkeys": []},
        r"software\jumpcloud": {"values": {}, "subkeys": ["JumpCloud Agent", "AD Integration Sync Agent"]},
    }})


def test_winreg_reader_reads_the_64_bit_view():
    module = fake_winreg()
    reader = WinRegReader(winreg_module=module)
    cv = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
    assert reader.value(cv, "UBR") == 2861
    assert reader.values(cv) == {"CurrentBuild": "22631", "UBR": 2861, "BE": 5,
                                 "Link": "\\Registry\\Machine\\X", "Nothing": b""}
    assert reader.subkeys(r"HKLM\SOFTWARE\JumpCloud") == ["JumpCloud Agent", "AD Integration Sync Agent"]
    assert reader.exists(r"HKLM\SOFTWARE\JumpCloud")
    assert all(access & FakeWinreg.KEY_WOW64_64KEY for _, _, access in module.opened)
    assert module.closed == len(module.opened)


def test_winreg_reader_missing_things_are_empty():
    reader = WinRegReader(winreg_module=fake_winreg())
    assert reader.value(r"HKLM\SOFTWARE\Nope", "x") is None
    assert reader.value(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "Nope") is None
    assert reader.values(r"HKLM\SOFTWARE\Nope") == {}
    assert reader.subkeys(r"HKLM\SOFTWARE\Nope") == []
    assert reader.exists(r"HKLM\SOFTWARE\Nope") is False
    assert reader.exists(r"BOGUS\SOFTWARE") is False


@pytest.mark.skipif(__import__("sys").platform.startswith("win"), reason="winreg exists on Windows")
def test_winreg_reader_off_windows_answers_empty():
    reader = WinRegReader()
    assert reader.value(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "UBR") is None
    assert reader.exists(r"HKLM\SOFTWARE") is False
