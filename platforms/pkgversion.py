"""Package version ordering as dpkg and rpm define it.

Version strings cannot be compared as text ("1.10" > "1.9", "1.0~rc1" < "1.0"), and
plain numeric splitting gets epochs, revisions and the ``~`` rule wrong.  Deciding
whether a security update is pending, or whether the newest installed kernel is
newer than the running one, depends on getting this exactly right, so both
algorithms follow their reference implementations: dpkg's ``verrevcmp``
(Debian Policy 5.6.12) and rpm's ``rpmvercmp``.
"""
from __future__ import annotations

from functools import cmp_to_key
from typing import Callable


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


# --------------------------------------------------------------------------- dpkg


def _dpkg_order(char: str) -> int:
    """dpkg's weight of one character in a non-digit run: ``~`` sorts before the
    end of the string, letters before every other symbol."""
    if not char:
        return 0
    if char.isdigit():
        return 0
    if char.isascii() and char.isalpha():
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _verrevcmp(left: str, right: str) -> int:
    """dpkg's comparison of one upstream version or revision part."""
    i = j = 0
    while i < len(left) or j < len(right):
        # Non-digit prefix, character by character.
        while (i < len(left) and not left[i].isdigit()) or (j < len(right) and not right[j].isdigit()):
            a = _dpkg_order(left[i] if i < len(left) else "")
            b = _dpkg_order(right[j] if j < len(right) else "")
            if a != b:
                return _sign(a - b)
            i += 1
            j += 1
        # Digit run, compared as a number (leading zeros do not count).
        while i < len(left) and left[i] == "0":
            i += 1
        while j < len(right) and right[j] == "0":
            j += 1
        first_diff = 0
        while i < len(left) and j < len(right) and left[i].isdigit() and right[j].isdigit():
            if not first_diff:
                first_diff = ord(left[i]) - ord(right[j])
            i += 1
            j += 1
        if i < len(left) and left[i].isdigit():
            return 1
        if j < len(right) and right[j].isdigit():
            return -1
        if first_diff:
            return _sign(first_diff)
    return 0


def split_debian_version(version: str) -> tuple[int, str, str]:
    """``[epoch:]upstream[-revision]`` into its three parts (epoch 0 when absent)."""
    version = version.strip()
    epoch = 0
    head, colon, rest = version.partition(":")
    if colon and head.isdigit():
        epoch, version = int(head), rest
    upstream, dash, revision = version.rpartition("-")
    if not dash:
        upstream, revision = version, ""
    return epoch, upstream, revision


def debian_compare(left: str, right: str) -> int:
    """-1, 0 or 1 as ``dpkg --compare-versions left lt|eq|gt right`` would answer."""
    l_epoch, l_upstream, l_revision = split_debian_version(left)
    r_epoch, r_upstream, r_revision = split_debian_version(right)
    if l_epoch != r_epoch:
        return _sign(l_epoch - r_epoch)
    return _verrevcmp(l_upstream, r_upstream) or _verrevcmp(l_revision, r_revision)


# --------------------------------------------------------------------------- rpm


def _take(text: str, start: int, predicate: Callable[[str], bool]) -> int:
    end = start
    while end < len(text) and predicate(text[end]):
        end += 1
    return end


def _is_digit(char: str) -> bool:
    return char.isascii() and char.isdigit()


def _is_alpha(char: str) -> bool:
    return char.isascii() and char.isalpha()


def _is_separator(char: str) -> bool:
    return not (_is_digit(char) or _is_alpha(char)) and char not in "~^"


def rpm_compare(left: str, right: str) -> int:
    """-1, 0 or 1 as rpm's ``rpmvercmp`` orders two version (or release) strings.

    Also the ordering used for kernel release strings (``uname -r``), whose
    segments (``5.15.0-91-generic``, ``5.14.0-427.13.1.el9_4.x86_64``) compare the
    same way on every distribution.
    """
    if left == right:
        return 0
    i = j = 0
    while i < len(left) or j < len(right):
        i = _take(left, i, _is_separator)
        j = _take(right, j, _is_separator)
        a = left[i] if i < len(left) else ""
        b = right[j] if j < len(right) else ""
        if a == "~" or b == "~":            # tilde sorts before everything, even the end
            if a != "~":
                return 1
            if b != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if a == "^" or b == "^":            # caret sorts after the end, before anything else
            if not a:
                return -1
            if not b:
                return 1
            if a != "^":
                return 1
            if b != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (a and b):
            break
        numeric = _is_digit(a)
        kind = _is_digit if numeric else _is_alpha
        i_end, j_end = _take(left, i, kind), _take(right, j, kind)
        if j_end == j:                      # segments of different kinds: numbers win
            return 1 if numeric else -1
        seg_left, seg_right = left[i:i_end], right[j:j_end]
        if numeric:
            seg_left, seg_right = seg_left.lstrip("0"), seg_right.lstrip("0")
            if len(seg_left) != len(seg_right):
                return 1 if len(seg_left) > len(seg_right) else -1
        if seg_left != seg_right:
            return 1 if seg_left > seg_right else -1
        i, j = i_end, j_end
    if i >= len(left) and j >= len(right):
        return 0
    return -1 if i >= len(left) else 1


debian_key = cmp_to_key(debian_compare)
rpm_key = cmp_to_key(rpm_compare)
