#!/usr/bin/env python3
"""Build ``collector/data/vendor_rules.json`` from gitleaks' default rule set.

Why a build step: vendor token formats (Slack, Stripe, GitLab ...) change often and
gitleaks maintains them well; the collector must not parse TOML or Go regular
expressions at run time, on every endpoint.  This script turns
``../shared/secret-rules-source/gitleaks.toml`` into a small JSON table that ships
inside the package.  The output is deterministic (sorted, one rule per line):
running the script again on the same source gives the same bytes, which a test checks.

Go RE2 and Python ``re`` differ.  What is translated: ``(?i)`` in the middle of a
pattern (Go scopes it to the end of the enclosing group; Python refuses it), ``\\z``,
POSIX classes (``[[:alnum:]]``), ``(?<name>``.  What Python cannot run as Go does
(``\\p{..}``, ``(?U)``, a pattern that does not compile after translation) is skipped
and counted in ``skipped``, with the reason: never silently wrong.  Rules that
match file *names* (``path``), rules without a keyword for the one-pass prefilter,
and a few rules whose keywords occur in ordinary words (so the prefilter would fire
on most log lines) are skipped too, each with its reason.  ``generic-api-key`` is
left out on purpose: jcdiag's own key/value rules cover ``key = value`` secrets with
a curated keep list (a systemKey is an identifier, not a secret).

gitleaks is MIT-licensed: the notice is copied beside the table
(``LICENSE-gitleaks.txt``) and embedded in the JSON, as the licence asks.

Usage::

    python scripts/build_secret_rules.py [--source DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

try:
    import re._parser as sre_parse           # Python 3.11+
except ImportError:                          # Python 3.10
    import sre_parse  # type: ignore[no-redef]
try:
    import tomllib
except ImportError:                                   # Python 3.10: the backport
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "secret-rules-source"
DEFAULT_OUT = REPO / "collector" / "data" / "vendor_rules.json"
LICENSE_NAME = "LICENSE-gitleaks.txt"
SCHEMA = 1

#: Rules left out on purpose, and why (the reasons land in the JSON).
EXCLUDED = {
    "generic-api-key": "covered by jcdiag's own key/value rules (password, secret, token, key), "
                       "which keep identifiers such as systemKey; its keywords (key, api, auth, token) "
                       "are on most agent log lines",
    "curl-auth-user": "jcdiag's command-line rule takes the password of curl -u/--user user:pass "
                      "and keeps the user name, which support needs (this rule takes both)",
}
#: Keywords that occur inside ordinary words, so they cannot serve as a prefilter:
#: the rule keeps its other keywords, or is skipped when none is left.
WEAK_KEYWORDS = {"ey", "s.", "sk", "api", "key", "auth"}

POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
UNSUPPORTED = (
    (re.compile(r"\\[pP]"), "Unicode classes (\\p{..}) have no equivalent in Python's re on bytes"),
    (re.compile(r"\(\?[a-zA-Z]*U"), "the ungreedy flag (?U) means something else in Python"),
    (re.compile(r"\\[QE]"), "\\Q..\\E literals are not supported by Python's re"),
    (re.compile(r"\\C"), "\\C (any byte) is not supported by Python's re"),
)


class SourceError(ValueError):
    """The source data cannot be turned into a table without guessing."""


class Untranslatable(ValueError):
    """A Go regex that Python's ``re`` would not run the same way."""


def translate(go: str) -> str:
    """A Go RE2 regex as a Python ``re`` pattern with the same meaning, or raise
    :class:`Untranslatable` saying why."""
    for rx, why in UNSUPPORTED:
        if rx.search(go):
            raise Untranslatable(why)
    out: list[str] = []
    # Per open group: the "(?flags:" wrappers mid-group flags opened in it.
    opened: list[list[str]] = [[]]
    i, n = 0, len(go)
    while i < n:
        c = go[i]
        if c == "\\":
            nxt = go[i + 1:i + 2]
            out.append("\\Z" if nxt == "z" else go[i:i + 2])
            i += 2
            continue
        if c == "[":
            j, body = _char_class(go, i)
            out.append(body)
            i = j
            continue
        if c == "(":
            flags = re.match(r"\(\?([a-zA-Z-]+)\)", go[i:])
            if flags:
                at_start = not out and len(opened) == 1
                if at_start:
                    out.append(flags.group(0))
                else:                       # Go: the flags hold to the end of this group
                    out.append(f"(?{flags.group(1)}:")
                    opened[-1].append(flags.group(1))
                i += flags.end()
                continue
            if go.startswith("(?<", i) and not go.startswith(("(?<=", "(?<!"), i):
                out.append("(?P<")
                i += 3
                opened.append([])
                continue
            out.append("(")
            opened.append([])
            i += 1
            continue
        if c == ")":
            out.append(")" * len(opened.pop()))
            if not opened:
                raise Untranslatable("unbalanced parentheses")
            out.append(")")
            i += 1
            continue
        if c == "|" and opened[-1]:
            # Go keeps a mid-group flag for the later alternatives of the same group:
            # close the wrappers around this branch and open them again after the bar.
            out.append(")" * len(opened[-1]) + "|" + "".join(f"(?{f}:" for f in opened[-1]))
            i += 1
            continue
        if c == "{" and re.match(r"\{,\d+\}", go[i:]):
            out.append("\\{")                 # RE2 reads "{,n}" as literal text
            i += 1
            continue
        out.append(c)
        i += 1
    if len(opened) != 1:
        raise Untranslatable("unbalanced parentheses")
    out.append(")" * len(opened[0]))
    pattern = "".join(out)
    try:
        re.compile(pattern.encode())
    except (re.error, UnicodeEncodeError) as exc:
        raise Untranslatable(f"does not compile in Python after translation: {exc}") from None
    if nested_unbounded(pattern):
        raise Untranslatable("an unbounded repetition inside a repeated group: Go runs it in linear "
                             "time, Python's backtracking could take exponential time on hostile text")
    return pattern


def nested_unbounded(pattern: str) -> bool:
    """True when a repeated group (at most > 1) holds an unbounded repetition
    (``(?:a.*)+``, ``(?:x.*?){1,5}``): the shape that backtracks catastrophically."""
    def walk(items, inside_repeat: bool) -> bool:
        for op, arg in items:
            name = str(op)
            if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                low, high, sub = arg
                unbounded = high == sre_parse.MAXREPEAT
                if inside_repeat and unbounded:
                    return True
                if walk(sub, inside_repeat or high > 1):
                    return True
            elif name == "SUBPATTERN":
                if walk(arg[-1], inside_repeat):
                    return True
            elif name == "BRANCH":
                if any(walk(branch, inside_repeat) for branch in arg[1]):
                    return True
            elif name in ("ASSERT", "ASSERT_NOT"):
                if walk(arg[1], inside_repeat):
                    return True
        return False

    return walk(sre_parse.parse(pattern), False)


def _char_class(go: str, i: int) -> tuple[int, str]:
    """The bracket expression starting at ``go[i]``: (index after it, Python text)."""
    j = i + 1
    out = ["["]
    if go[j:j + 1] == "^":
        out.append("^")
        j += 1
    if go[j:j + 1] == "]":
        out.append("\\]")
        j += 1
    while j < len(go):
        c = go[j]
        if c == "]":
            return j + 1, "".join(out) + "]"
        if c == "\\":
            out.append(go[j:j + 2])
            j += 2
            continue
        posix = re.match(r"\[:(\^?)([a-z]+):\]", go[j:])
        if posix:
            if posix.group(1) or posix.group(2) not in POSIX_CLASSES:
                raise Untranslatable(f"POSIX class {posix.group(0)} is not translated")
            out.append(POSIX_CLASSES[posix.group(2)])
            j += posix.end()
            continue
        if c == "[":
            out.append("\\[")                  # a literal '[' inside a class (Python warns)
            j += 1
            continue
        out.append(c)
        j += 1
    raise Untranslatable("unterminated character class")


def convert_allowlist(raw: dict[str, Any], where: str) -> tuple[Optional[dict[str, Any]], list[str]]:
    """A gitleaks allowlist in the table's shape, or None when nothing of it can be
    honoured on collected text (path and commit conditions).  Dropping an
    allowlist only ever redacts more."""
    notes: list[str] = []
    condition = str(raw.get("condition", "OR")).upper()
    has_path = bool(raw.get("paths") or raw.get("commits"))
    if has_path and condition == "AND":
        return None, [f"{where}: allowlist bound to file paths/commits left out"]
    regexes = []
    for rx in raw.get("regexes", []):
        try:
            regexes.append(translate(rx))
        except Untranslatable as exc:
            notes.append(f"{where}: allowlist regex {rx!r} left out ({exc})")
    stopwords = sorted({str(w).lower() for w in raw.get("stopwords", [])})
    if not regexes and not stopwords:
        return None, notes
    entry: dict[str, Any] = {"target": raw.get("regexTarget", "secret")}
    if regexes:
        entry["regexes"] = regexes
    if stopwords:
        entry["stopwords"] = stopwords
    if condition == "AND" and regexes and stopwords:
        entry["condition"] = "and"
    return entry, notes


def convert_rule(raw: dict[str, Any]) -> tuple[Optional[dict[str, Any]], Optional[str], list[str]]:
    """(rule, None, notes) or (None, why it is skipped, notes)."""
    rid = raw.get("id")
    if not isinstance(rid, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", rid):
        raise SourceError(f"rule id {rid!r} is not lower-case kebab-case")
    if rid in EXCLUDED:
        return None, EXCLUDED[rid], []
    if raw.get("path"):
        return None, "matches file names (path), not content", []
    if not raw.get("regex"):
        return None, "no content regex", []
    keywords = sorted({str(k).lower() for k in raw.get("keywords", [])})
    if not keywords:
        return None, "no keyword for the one-pass prefilter", []
    weak = [k for k in keywords if k in WEAK_KEYWORDS]
    keywords = [k for k in keywords if k not in WEAK_KEYWORDS]
    notes = [f"{rid}: keyword {k!r} dropped (occurs in ordinary words)" for k in weak]
    if not keywords:
        return None, f"its only keywords ({', '.join(weak)}) occur in ordinary words: no usable prefilter", notes
    try:
        pattern = translate(raw["regex"])
    except Untranslatable as exc:
        return None, f"regex not translatable: {exc}", notes
    rule: dict[str, Any] = {"id": rid, "description": str(raw.get("description", rid)),
                            "keywords": keywords, "regex": pattern}
    if raw.get("secretGroup"):
        rule["secret_group"] = int(raw["secretGroup"])
    if raw.get("entropy"):
        rule["entropy"] = float(raw["entropy"])
    allowlists = []
    for index, al in enumerate(raw.get("allowlists", [])):
        entry, more = convert_allowlist(al, f"{rid} allowlist #{index + 1}")
        notes += more
        if entry:
            allowlists.append(entry)
    if allowlists:
        rule["allowlists"] = allowlists
    if weak:
        rule["dropped_keywords"] = weak
    return rule, None, notes


def render(table: dict[str, Any]) -> str:
    """The table as JSON: sorted keys, one rule per line (diff-friendly, reproducible)."""
    def compact(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def listing(items: Iterable[Any]) -> str:
        return "[\n" + ",\n".join(map(compact, items)) + "\n]"

    return "{\n" + ",\n".join(
        compact(key) + ":" + (listing(value) if key in ("rules", "skipped") else compact(value))
        for key, value in sorted(table.items())) + "\n}\n"


def source_commit(readme: Path) -> str:
    if readme.is_file():
        found = re.search(r"\b[0-9a-f]{40}\b", readme.read_text(encoding="utf-8"))
        if found:
            return found.group(0)
    return "unknown"


def build_table(source: Path) -> tuple[dict[str, Any], str, list[str]]:
    """The table, the licence notice text and build notes, from ``source``."""
    toml_path = source / "gitleaks.toml"
    license_path = source / "LICENSE"
    if not license_path.is_file():
        raise SourceError(f"{license_path}: the MIT notice is missing; it must ship with the data")
    try:
        doc = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SourceError(f"{toml_path}: {exc}") from None
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise SourceError(f"{toml_path}: no [[rules]]")
    notice = license_path.read_text(encoding="utf-8").strip() + "\n"
    rules, skipped, notes = [], [], []
    for raw in raw_rules:
        rule, why, more = convert_rule(raw)
        notes += more
        if rule is None:
            skipped.append({"id": raw["id"], "reason": why})
        else:
            rules.append(rule)
    ids = [r["id"] for r in rules] + [s["id"] for s in skipped]
    if len(ids) != len(set(ids)):
        raise SourceError(f"{toml_path}: a rule id appears twice")
    glob_al = doc.get("allowlist") or {}
    glob_entry, more = convert_allowlist({k: v for k, v in glob_al.items() if k != "paths"},
                                         "global allowlist")
    notes += more
    table = {
        "format": "jcdiag-vendor-rules",
        "schema": SCHEMA,
        "source": "gitleaks default rules (https://github.com/gitleaks/gitleaks, config/gitleaks.toml)",
        "commit": source_commit(source / "README.md"),
        "license": "MIT. " + notice.replace("\n\n", " ").replace("\n", " ").strip(),
        "upstream_rules": len(raw_rules),
        "allowlist": glob_entry or {},
        "rules": sorted(rules, key=lambda r: r["id"]),
        "skipped": sorted(skipped, key=lambda s: s["id"]),
    }
    return table, notice, notes


def license_file_text(notice: str) -> str:
    return ("collector/data/vendor_rules.json is derived from the default rules of gitleaks\n"
            "(https://github.com/gitleaks/gitleaks), used under the following licence:\n\n" + notice)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="folder with gitleaks.toml, LICENSE and README.md "
                             "(default: ../shared/secret-rules-source beside the repo)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="table to write (default: collector/data/vendor_rules.json); "
                             f"{LICENSE_NAME} is written beside it")
    parser.add_argument("--verbose", action="store_true", help="print every build note")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        table, notice, notes = build_table(args.source)
    except (SourceError, OSError) as exc:
        print(f"cannot build the vendor rule table: {exc}", file=sys.stderr)
        return 1
    if args.verbose:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(table), encoding="utf-8", newline="\n")
    (args.out.parent / LICENSE_NAME).write_text(license_file_text(notice), encoding="utf-8",
                                                newline="\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {len(table['rules'])} of "
          f"{table['upstream_rules']} rules active, {len(table['skipped'])} skipped")
    for s in table["skipped"]:
        print(f"  skipped {s['id']}: {s['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
