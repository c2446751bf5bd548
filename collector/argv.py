"""Secrets on command lines: one tokenizer for argv-style text, and the flags that take them.

Process and service listings (``ps aux``, ``tasklist``, ``wmic``, ``systemctl``) and
log lines that quote a command carry passwords in forms no ``key=value`` rule sees:
``mysql -uroot -pSECRET db1``, ``7z a x.7z -pSECRET``, ``curl -u user:SECRET``,
``sshpass -p SECRET``, ``net use \\\\srv\\share /user:DOM\\user SECRET``,
``ConvertTo-SecureString 'SECRET' -AsPlainText``.  The rule is always the same: find
the token that holds the value and replace the value, never its neighbour.

The tokenizer accepts POSIX and Windows quoting at once (``'..'``, ``".."`` with
``\\"`` inside, a backslash escaping a quote or a blank), because a process listing
mixes both and the only thing needed is where each token starts and ends.

Which tools take which flags is data: the ``argv`` matcher of the ``command-line``
rule in ``collector/data/redaction_rules.json``.  Generic secret flags (``--password
X``, ``-Password X``, ``/pass:X``, ``password= X``) are classified by the same key
rules as everything else, through the ``classify`` callable the caller passes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

_BLANK = b" \t\r\n"
_QUOTES = b"\"'"
_SEPARATORS = {b";", b"|", b"||", b"&&", b"&"}
_FLAG_NAME = re.compile(rb"(?:--?|/)([A-Za-z][A-Za-z0-9_.-]{1,63})(?:([=:])|$)")
_NOT_A_VALUE = re.compile(rb"-[A-Za-z]")      # the next flag: this one was a switch

#: A token: (start, end) in the line.
Token = tuple[int, int]


def tokenize(line: bytes, pos: int = 0, end: Optional[int] = None) -> list[Token]:
    """The argv tokens of ``line[pos:end]`` as spans (quotes included)."""
    end = len(line) if end is None else end
    out: list[Token] = []
    i = pos
    while i < end:
        while i < end and line[i] in _BLANK:
            i += 1
        if i >= end:
            break
        start = i
        while i < end and line[i] not in _BLANK:
            c = line[i]
            if c in _QUOTES:
                j = i + 1
                while j < end and line[j] != c:
                    j += 2 if (c == 34 and line[j] == 92 and j + 1 < end) else 1
                i = min(j + 1, end)
            elif c == 92 and i + 1 < end and line[i + 1] in _QUOTES + b" ":
                i += 2
            else:
                i += 1
        out.append((start, i))
    return out


def unquoted(line: bytes, s: int, e: int) -> tuple[int, int]:
    """The span inside the quotes of a token (or part) that is quoted as a whole."""
    if e - s >= 2 and line[s] in _QUOTES and line[e - 1] == line[s]:
        return s + 1, e - 1
    if e - s >= 1 and line[s] in _QUOTES:
        return s + 1, e
    return s, e


def _text(line: bytes, tok: Token) -> bytes:
    s, e = unquoted(line, *tok)
    return line[s:e]


def _basename(word: bytes) -> bytes:
    word = word.lstrip(b"$@(&`").rsplit(b"/", 1)[-1].rsplit(b"\\", 1)[-1].lower()
    return word[:-4] if word.endswith(b".exe") else word


@dataclass(frozen=True)
class ToolSpec:
    """The secret-taking flags of one tool (see the module docstring)."""

    glued: tuple[bytes, ...] = ()        # value only glued to the flag: mysql -pSECRET
    value: tuple[bytes, ...] = ()        # glued or the next token: sshpass -p SECRET
    userpass: tuple[bytes, ...] = ()     # user:SECRET or user%SECRET: curl -u, smbclient -U
    passarg: tuple[bytes, ...] = ()      # pass:SECRET: openssl -passin
    positional: int = 0                  # the n-th bare argument is the secret
    subcommand: Optional[bytes] = None   # ... counted after this word (net use)
    positional_skip: Optional[re.Pattern[bytes]] = None
    ignore_case: bool = False
    triggers: tuple[bytes, ...] = ()     # words that start it in free text (default: its name)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "ToolSpec":
        ci = bool(raw.get("ignore_case"))
        flags = lambda name: tuple((f.lower() if ci else f).encode() for f in raw.get(name, ()))  # noqa: E731
        skip = raw.get("positional_skip")
        return cls(flags("glued"), flags("value"), flags("userpass"), flags("passarg"),
                   int(raw.get("positional", 0)),
                   raw["subcommand"].encode() if raw.get("subcommand") else None,
                   re.compile(skip.encode(), re.I) if skip else None, ci,
                   tuple(t.lower().encode() for t in raw.get("triggers", ())))


#: ``classify(flag name) -> rule id or None``; ``add(start, end, rule id)``.
Classify = Callable[[str], Optional[str]]
Add = Callable[[int, int, str], None]


class ArgvScanner:
    """Finds secret values in tokenized command lines."""

    def __init__(self, rule_id: str, tools: Mapping[str, ToolSpec], classify: Classify):
        self.rule_id = rule_id
        self.tools = {name.encode(): spec for name, spec in tools.items()}
        self.classify = classify
        # Words that start a command in free text: a tool's name, or its own triggers
        # when the name alone is an everyday word ("net" -> "net use").
        self.triggers = tuple(dict.fromkeys(t for name, spec in self.tools.items()
                                            for t in (spec.triggers or (name,))))

    def is_tool_at(self, low: bytes, p: int, word: bytes) -> bool:
        """True when the trigger ``word`` at ``p`` is a whole command word
        (``/usr/bin/mysql``, ``"7z``, ``net.exe``), not part of ``backup.7z`` or ``mysqld``."""
        if p and low[p - 1] not in b" \t\"'/\\=(`":
            return False
        q = p + len(word)
        if low.startswith(b".exe", q):
            q += 4
        return q >= len(low) or low[q] in b" \t\r\n\"';|&)`"

    def scan_line(self, line: bytes, pos: int, end: int, add: Add, generic_everywhere: bool,
                  depth: int = 0) -> None:
        """Scan ``line[pos:end]``: every tool found in it, and generic secret flags
        (everywhere when ``generic_everywhere``, else only after a tool word).  A quoted
        argument holding blanks is a script too (``sh -c "mysql -pX"``, ``powershell
        -Command "ConvertTo-SecureString 'X' ..."``): it is scanned as a command line of
        its own, two levels deep at most."""
        toks = tokenize(line, pos, end)
        tool: Optional[ToolSpec] = None
        seen_tool = generic_everywhere
        positional = 0
        after_sub = False
        i = 0
        while i < len(toks):
            s, e = toks[i]
            word = _text(line, toks[i])
            if word in _SEPARATORS:
                tool, positional, after_sub = None, 0, False
                i += 1
                continue
            if word.endswith(b";") and e - s > 1 and line[e - 1] == 59:
                # "cmd -pX; next": the token is scanned without its ';', and the
                # command ends after it.
                toks[i] = (s, e - 1)
                toks.insert(i + 1, (e - 1, e))
                continue
            spec = self.tools.get(_basename(word))
            if spec is not None:
                tool, positional, after_sub, seen_tool = spec, 0, spec.subcommand is None, True
                i += 1
                continue
            if tool is not None:
                taken = self._tool_flag(tool, line, toks, i, add)
                if taken:
                    i += taken
                    continue
            if seen_tool:
                taken = self._generic_flag(line, toks, i, add)
                if taken:
                    i += taken
                    continue
            if tool is not None and tool.positional:
                key = word.lower() if tool.ignore_case else word
                if not after_sub:
                    after_sub = tool.subcommand is not None and key.lower() == tool.subcommand
                elif not word.startswith((b"-", b"/")) and not (
                        tool.positional_skip is not None and tool.positional_skip.search(word)):
                    positional += 1
                    if positional == tool.positional and word != b"*":
                        vs, ve = unquoted(line, s, e)
                        add(vs, ve, self.rule_id)
            if depth < 2 and e - s > 2 and line[s] in _QUOTES and any(b in line[s:e] for b in b" \t"):
                vs, ve = unquoted(line, s, e)
                self.scan_line(line, vs, ve, add, False, depth + 1)
            i += 1

    # -- flag forms ---------------------------------------------------------------
    def _tool_flag(self, spec: ToolSpec, line: bytes, toks: list[Token], i: int, add: Add) -> int:
        s, e = toks[i]
        raw = line[s:e]
        key = raw.lower() if spec.ignore_case else raw
        for kind, flags in (("glued", spec.glued), ("value", spec.value),
                            ("userpass", spec.userpass), ("passarg", spec.passarg)):
            for flag in flags:
                if not key.startswith(flag):
                    continue
                if len(key) == len(flag):                      # the value is the next token
                    if kind == "glued" or i + 1 >= len(toks):
                        return 0
                    ns, ne = toks[i + 1]
                    self._value(kind, line, ns, ne, add)
                    return 2
                vs = s + len(flag)
                long_flag = flag.startswith((b"--", b"/")) or len(flag) > 2
                if line[vs] in b"=:":
                    vs += 1
                elif long_flag:
                    continue                                   # --passwordfile is another flag
                self._value(kind, line, vs, e, add)
                return 1
        return 0

    def _value(self, kind: str, line: bytes, s: int, e: int, add: Add) -> None:
        s, e = unquoted(line, s, e)
        if e <= s:
            return
        value = line[s:e]
        if kind == "userpass":
            cut = value.find(b":")
            if cut < 0:
                cut = value.find(b"%")
            if cut < 0:
                return                                        # user only: the tool prompts
            s += cut + 1
        elif kind == "passarg":
            if not value.lower().startswith(b"pass:"):
                return                                        # env:VAR, file:PATH name no secret
            s += 5
        if e > s:
            add(s, e, self.rule_id)

    def _generic_flag(self, line: bytes, toks: list[Token], i: int, add: Add) -> int:
        s, e = toks[i]
        word = line[s:e]
        m = _FLAG_NAME.match(word)
        if m is None:
            if word.endswith(b"=") and len(word) > 1 and word[:-1].replace(b"_", b"").isalnum():
                name = word[:-1]                              # sc.exe: password= SECRET
            else:
                return 0
        else:
            name = m.group(1)
        lname = name.lower()
        if lname.startswith(b"no") or lname.startswith(b"asplain"):
            return 0
        rule = self.classify(name.decode("latin-1"))
        if rule is None:
            return 0
        if m is not None and m.group(2):                      # --password=X, /pass:X
            vs = s + m.end()
            if vs < e:
                vs, ve = unquoted(line, vs, e)
                if ve > vs and not _NOT_A_VALUE.match(line, vs):
                    add(vs, ve, rule)
            return 1
        if m is not None and not word.startswith(b"-"):
            return 0                                          # "/password" alone: a path
        if i + 1 >= len(toks):
            return 1
        ns, ne = toks[i + 1]
        vs, ve = unquoted(line, ns, ne)
        if ve <= vs or _NOT_A_VALUE.match(line, vs) or (vs == ns and line[vs] == 40):
            return 1                                          # a switch, or "(...)": an expression
        add(vs, ve, rule)
        return 2
