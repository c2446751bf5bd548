"""The one sanitizer for names that come from the examined system and become payload paths.

User names from an image's ``etc/passwd``, ``/Users`` and ``C:\\Users`` folder names and
the names of collected files are written by whoever controlled that system.  They
become folders in the private workspace, then entry names engineers extract on
Windows, macOS and Linux.  So every such name passes :func:`safe_component`, which is

* confining: the result is one non-empty path component that is never ``.`` or ``..``,
  holds no ``/``, ``\\``, NUL, control or format character, no character Windows
  refuses (``<>:"|?*``), no trailing dot or space, and is no Windows device name
  (``CON``, ``NUL``, ``COM1``...);
* readable: letters, digits and marks of every script stay as they are, so ``josé``
  and ``Jürgen Müller`` look like themselves;
* injective: everything else is percent-encoded (``%`` included), so two different
  hostile names never merge into one folder; look-alikes (fullwidth solidus, one-dot
  leader, bidi overrides, zero-width spaces) are encoded and show as what they are;
* bounded: at most :data:`MAX_COMPONENT` UTF-8 bytes; a longer name keeps its start
  and gets ``~`` and a hash of the whole (``~`` is always encoded otherwise, so a
  shortened name never equals another name), and a whole path at most
  :data:`MAX_PATH` bytes (deeper parts fold into one hashed component);
* stable across file systems: a name not in Unicode NFC has its combining marks
  encoded, since macOS would otherwise merge ``é`` and ``e`` + U+0301.

Undecodable bytes (``surrogateescape`` from ``os.fsdecode``) become ``%XX`` of the
byte itself.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_COMPONENT = 120       # bytes of one component (file systems allow 255)
MAX_PATH = 1000           # bytes of a whole payload path (PATH_MAX is 4096 with the workspace)
EMPTY = "%empty"          # cannot come out of the encoding: '%' is always followed by two hex digits

_ASCII_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        " -_.,@+=!#$&'()[]{};^")
_DEVICE = re.compile(r"^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³]) *(\..*)?$",
                     re.IGNORECASE)


def _encode_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:                     # an undecodable byte, kept as that byte
        return f"%{code - 0xDC00:02X}"
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", errors="surrogatepass"))


def _keep(ch: str, marks: bool) -> bool:
    if ch in _ASCII_KEEP:
        return True
    if ord(ch) < 0x80:
        return False
    return unicodedata.category(ch)[0] in ("LMN" if marks else "LN")


def safe_component(name: str) -> str:
    """``name`` as one path component safe on every OS (see the module docstring)."""
    if name == "":
        return EMPTY
    marks = unicodedata.is_normalized("NFC", name)
    out = "".join(ch if _keep(ch, marks) else _encode_char(ch) for ch in name)
    if set(name) <= {"."}:                          # ".", "..", "...": every dot encoded
        out = "%2E" * len(name)
    elif out[-1] in ". ":                           # Windows drops trailing dots and spaces
        out = out[:-1] + _encode_char(out[-1])
    if out[0] == " ":
        out = _encode_char(" ") + out[1:]
    if _DEVICE.match(out):                          # CON, nul.txt, COM1...: not openable on Windows
        out = _encode_char(out[0]) + out[1:]
    if len(out.encode("utf-8")) > MAX_COMPONENT:
        out = _shortened(out, name, MAX_COMPONENT)
    return out


def _shortened(text: str, original: str, limit: int) -> str:
    """``text`` cut to fit ``limit`` bytes with ``~`` and 16 hex digits of the original's
    hash (never cutting an escape or a character in half)."""
    digest = hashlib.sha256(original.encode("utf-8", errors="surrogateescape")).hexdigest()[:16]
    head = text.encode("utf-8")[: limit - 17].decode("utf-8", errors="ignore")
    head = re.sub(r"%[0-9A-F]?$", "", head)
    return f"{head}~{digest}"


def destination(template: str, user: str | None = None, names: tuple[str, ...] = ()) -> str:
    """A payload path: ``template`` (a platform's own folder names, ``/``-separated, may
    hold ``{user}``) with the examined ``user`` and the relative ``names`` of a file,
    each made one safe component."""
    parts = [safe_component(user) if p == "{user}" and user is not None else safe_component(p)
             for p in template.split("/") if p]
    rel = [safe_component(n) for n in names]
    path = "/".join(parts + rel) or EMPTY
    if len(path.encode("utf-8")) > MAX_PATH:            # deep and long: fold the rest into one
        kept: list[str] = []
        budget = MAX_PATH - len("/".join(parts).encode("utf-8")) - MAX_COMPONENT - 2
        for part in rel[:-1]:
            budget -= len(part.encode("utf-8")) + 1
            if budget < 0:
                break
            kept.append(part)
        folded = "%2F".join(rel[len(kept):])
        path = "/".join(parts + kept + [_shortened(folded, "/".join(names), MAX_COMPONENT)])
    return path
