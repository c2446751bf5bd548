"""Text from the examined system or a bundle, made safe to show to a person.

File names, user names, log lines and header fields are written by whoever controlled
the examined machine.  Shown raw on a terminal or in SUMMARY.txt (read with ``less``),
control and format characters could move the cursor, recolour the screen, retitle the
window or forge whole lines ("Lifecycle: OK").  :func:`printable` shows them as the
escapes Python would print instead.
"""
from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every non-printable character (controls, newlines, bidi and other
    format characters) written as its ``\\x``/``\\u`` escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
