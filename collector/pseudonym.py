"""Consistent pseudonyms for ``--obfuscate``: names and addresses, never secrets.

The :class:`~collector.redact.Redactor` applies a :class:`Pseudonymizer` after the
secret rules, to every text artifact of the bundle.  The same original always
gets the same pseudonym - within a bundle, and across runs and machines that
share one map file - because pseudonyms are derived with HMAC-SHA256 from a
random key kept in that file.  The map file (the key, and every original with its
pseudonym, so the admin can translate back) is written mode 0600 where the admin
says and never goes into the bundle; ``jcdiag open`` never needs it.

What is replaced, and how structure is kept so the logs stay useful:

- host names and domains, label by label (``dc01.ad.acme.com`` ->
  ``host-1a2b3c.host-4d5e6f.domain-7a8b9c.com``): two names under one domain stay
  under one pseudo domain; the top-level domain stays.  Public service domains
  (jumpcloud.com, microsoft.com ...) stay as they are.  Free text is searched for
  names under common top-level domains plus those of the ``domains`` given; bare
  host names must be given (``hostnames``).
- IPv4, prefix-preserving per octet (same /8, /16, /24 -> same pseudo prefix),
  private ranges stay private (10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16);
  loopback, unspecified, broadcast, multicast and netmasks are kept.
- IPv6, prefix-preserving per 16-bit group; loopback, unspecified and multicast
  kept; link-local keeps fe80::/64, unique-local stays in fd00::/8, global in 2000::/3.
- MAC addresses: the vendor part (OUI) stays, the device part is replaced.
- local user names (given: ``usernames``), e-mail addresses (local part as a user
  name, domain as a domain), and ``keywords`` (substrings, case-insensitive).
"""
from __future__ import annotations

import bisect
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

KINDS = ("hostname", "domain", "ipv4", "ipv6", "mac", "username", "email", "keyword")
MAP_FORMAT = "jcdiag-pseudonym-map"

# Top-level domains searched for in free text.  Left out on purpose: those that
# are also common file extensions (.sh .py .md .rs .pl .so .js .go .in .is .it ...).
TLDS = frozenset("""
com net org edu gov mil int info biz io co us uk de fr ca au jp cn br ru nl se es ch be at dk fi pl cz
ie nz za mx kr tw hk sg ae il tr gr pt hu ro ua vn th my ph id ar cl pe eu asia cloud app dev tech
online site xyz ai local lan corp internal intranet home localdomain priv private domain ad
""".split())
# Second-level labels that are public suffixes under a two-letter TLD (co.uk, com.au).
PUBLIC_SECOND_LEVEL = frozenset("co com net org ac gov edu ltd plc ne or go".split())
# Names that tell the engineer something and nothing about the customer: kept.
PUBLIC_DOMAINS = frozenset("""
jumpcloud.com jumpcloud.net jumpcloud.io jumpcloud.ai jumpcloud.tech
amazonaws.com aws.amazon.com amazon.com cloudfront.net microsoft.com microsoftonline.com windows.com
windows.net windowsupdate.com office.com office365.com live.com azure.com azureedge.net msftncsi.com
apple.com icloud.com mzstatic.com google.com googleapis.com gstatic.com github.com githubusercontent.com
ubuntu.com canonical.com debian.org redhat.com fedoraproject.org centos.org rockylinux.org
almalinux.org opensuse.org suse.com python.org pypi.org digicert.com letsencrypt.org sectigo.com
globalsign.com godaddy.com entrust.net okta.com cloudflare.com akamai.net akamaiedge.net
gmail.com outlook.com hotmail.com yahoo.com me.com proton.me protonmail.com
example.com example.org example.net localhost.localdomain
""".split())
# Accounts every system has; pseudonymizing them would only blur the logs.
SYSTEM_USERS = frozenset("""
root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats nobody
nogroup systemd-network systemd-resolve systemd-timesync messagebus syslog sshd ntp polkitd
administrator admin guest defaultaccount wdagutilityaccount system localservice networkservice
local service network service everyone users
""".split())


class PseudonymMapError(ValueError):
    """The map file exists but cannot be used (not ours, corrupt)."""


def _lower_literals(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i.strip().lower() for i in items if i and i.strip()))


class Pseudonymizer:
    """Replaces names and addresses with consistent pseudonyms.

    ``map_path``: where the map is kept (loaded when it exists, written mode 0600
    by :meth:`save`); None keeps it in memory for this run only.  ``keywords``,
    ``usernames``, ``hostnames`` and ``domains`` are the caller's lists (the
    machine's host name and domain, its local accounts, ``--redact-keyword``).
    """

    def __init__(self, map_path: Path | str | None = None, keywords: Sequence[str] = (),
                 usernames: Sequence[str] = (), hostnames: Sequence[str] = (),
                 domains: Sequence[str] = ()):
        self.map_path = Path(map_path) if map_path else None
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, str]] = {k: {} for k in KINDS}
        self._dirty = False
        self._key = b""
        if self.map_path is not None and self.map_path.exists():
            self._load(self.map_path)
        else:
            self._key = secrets.token_bytes(32)
            self._dirty = True
        self.keywords = _lower_literals(keywords)
        self.usernames = tuple(u for u in _lower_literals(usernames)
                               if u not in SYSTEM_USERS and not u.startswith("_") and len(u) >= 3)
        self.hostnames = tuple(h for h in _lower_literals(hostnames) if len(h) >= 2 and h != "localhost")
        self.domains = tuple(d.strip(".") for d in _lower_literals(domains) if "." in d.strip("."))
        self._tlds = TLDS | {d.rsplit(".", 1)[1] for d in self.domains}
        tld_alt = b"|".join(re.escape(t.encode()) for t in sorted(self._tlds, key=len, reverse=True))
        self._tld_rx = re.compile(rb"\.(?:" + tld_alt + rb")(?![a-z0-9-]|\.[a-z0-9])")
        self._names: tuple[tuple[bytes, str, Callable[[str], str]], ...] = tuple(
            [(h.encode(), "hostname", self.hostname) for h in self.hostnames] +
            [(u.encode(), "username", self.username) for u in self.usernames])

    # -- map file ------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text("utf-8"))
            if doc.get("format") != MAP_FORMAT:
                raise PseudonymMapError(f"{path}: not a jcdiag pseudonym map")
            self._key = bytes.fromhex(doc["key"])
            if len(self._key) < 16:
                raise PseudonymMapError(f"{path}: the key is too short")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, PseudonymMapError):
                raise
            raise PseudonymMapError(f"{path}: cannot read the pseudonym map: {exc}") from None
        for kind, entries in (doc.get("entries") or {}).items():
            if kind in self._entries and isinstance(entries, dict):
                self._entries[kind].update({str(k): str(v) for k, v in entries.items()})
        if os.name == "posix" and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)          # it holds real names: owner only

    def save(self) -> None:
        """Write the map (mode 0600, atomically) when there is a map path and news."""
        if self.map_path is None:
            return
        with self._lock:
            if not self._dirty and self.map_path.exists():
                return
            doc = {"format": MAP_FORMAT, "version": 1,
                   "about": "jcdiag --obfuscate map: original -> pseudonym. Private: never send it.",
                   "key": self._key.hex(),
                   "entries": {k: dict(sorted(v.items())) for k, v in self._entries.items()}}
            directory = self.map_path.parent
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".jcdiag-map-", dir=directory)   # created 0600
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(doc, fh, indent=1, sort_keys=False)
                    fh.write("\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.map_path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            self._dirty = False

    def entries(self, kind: str) -> dict[str, str]:
        """A copy of the original -> pseudonym entries of one kind."""
        return dict(self._entries[kind])

    # -- deriving pseudonyms -------------------------------------------------------
    def _remember(self, kind: str, original: str, make: Callable[[], str]) -> str:
        table = self._entries[kind]
        found = table.get(original)
        if found is None:
            found = make()
            with self._lock:
                table[original] = found
                self._dirty = True
        return found

    def _tag(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()
        return digest[:6]

    def _permute(self, value: int, bits: int, context: str,
                 allowed: Optional[Callable[[int], bool]] = None) -> int:
        """A keyed permutation of ``bits``-bit integers (4-round Feistel network);
        with ``allowed``, cycle-walks so a member of a subset maps into the subset."""
        half = bits // 2
        mask = (1 << half) - 1
        base = f"perm\0{context}\0{bits}\0".encode()

        def once(v: int) -> int:
            left, right = v >> half, v & mask
            for rnd in range(4):
                f = hmac.new(self._key, base + bytes([rnd]) + right.to_bytes(4, "big"), hashlib.sha256)
                left, right = right, left ^ (int.from_bytes(f.digest()[:4], "big") & mask)
            return (left << half) | right

        out = once(value)
        if allowed is not None:
            while not allowed(out):
                out = once(out)
        return out

    def username(self, name: str) -> str:
        key = name.lower()
        return self._remember("username", key, lambda: f"user-{self._tag('user', key)}")

    def keyword(self, word: str) -> str:
        key = word.lower()
        return self._remember("keyword", key, lambda: f"keyword-{self._tag('keyword', key)}")

    def hostname(self, name: str) -> str:
        """A host name or FQDN, label by label (see the module docstring)."""
        name = name.lower().rstrip(".")
        if "." in name:
            return self.domain(name)
        return self._remember("hostname", name, lambda: f"host-{self._tag('label', name)}")

    def domain(self, name: str) -> str:
        name = name.lower().rstrip(".")
        if _is_public(name):
            return name

        def make() -> str:
            labels = name.split(".")
            keep = 1
            if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in PUBLIC_SECOND_LEVEL:
                keep = 2
            out = labels[-keep:]
            registered = len(labels) - keep - 1
            for i in range(registered, -1, -1):
                prefix = "domain" if i == registered else "host"
                out.insert(0, f"{prefix}-{self._tag('label', labels[i])}")
            return ".".join(out)

        return self._remember("domain", name, make)

    def email(self, address: str) -> str:
        local, _, dom = address.lower().rpartition("@")
        return self._remember("email", address.lower(),
                              lambda: f"{self.username(local)}@{self.domain(dom)}")

    def ipv4(self, text: str) -> str:
        try:
            addr = ipaddress.IPv4Address(text)
        except ValueError:
            return text
        o = list(addr.packed)
        value = int(addr)
        if (o[0] in (0, 127) or o[0] >= 224 or value == 0xFFFFFFFF
                or (o[0] == 255 or (o[0] >= 128 and _is_netmask(value)))):
            return text

        def make() -> str:
            p = self._permute
            new = list(o)
            if o[0] == 10 or (o[0] == 192 and o[1] == 168) or (o[0] == 169 and o[1] == 254):
                start = 1 if o[0] == 10 else 2
            elif o[0] == 172 and 16 <= o[1] <= 31:
                new[1] = 16 + p(o[1] - 16, 4, "v4:172")
                start = 2
            elif o[0] == 100 and 64 <= o[1] <= 127:
                new[1] = 64 + p(o[1] - 64, 6, "v4:100")
                start = 2
            elif o[0] in _V4_SPECIAL_FIRST:       # the public rest of 100/8, 169/8, 172/8, 192/8
                private = _V4_PRIVATE_SECOND[o[0]]
                new[1] = p(o[1], 8, f"v4:{o[0]}", lambda v: v not in private)
                start = 2
            else:
                new[0] = p(o[0], 8, "v4:", lambda v: v in _V4_PUBLIC_FIRST)
                start = 1
            for i in range(start, 4):
                ctx = "v4:" + ".".join(map(str, o[:i]))
                if i == 3:
                    if o[3] in (0, 255):
                        continue
                    new[3] = p(o[3], 8, ctx, lambda v: 1 <= v <= 254)
                else:
                    new[i] = p(o[i], 8, ctx)
            return ".".join(map(str, new))

        return self._remember("ipv4", text, make)

    def ipv6(self, text: str) -> str:
        try:
            addr = ipaddress.IPv6Address(text)
        except ValueError:
            return text
        if addr.is_loopback or addr.is_unspecified or addr.is_multicast or addr.ipv4_mapped:
            return text
        groups = [int.from_bytes(addr.packed[i:i + 2], "big") for i in range(0, 16, 2)]

        def make() -> str:
            new = list(groups)
            g0 = groups[0]
            if g0 & 0xFFC0 == 0xFE80:
                start = 4                                     # link-local: keep fe80::/64
            elif g0 & 0xFE00 == 0xFC00:
                new[0] = (g0 & 0xFF00) | self._permute(g0 & 0xFF, 8, "v6:ula")
                start = 1
            elif g0 & 0xE000 == 0x2000:
                new[0] = 0x2000 | self._permute(g0 & 0x1FFF, 14, "v6:", lambda v: v < 0x2000)
                start = 1
            else:
                start = 1
            for i in range(start, 8):
                ctx = "v6:" + ":".join(f"{g:x}" for g in groups[:i])
                new[i] = self._permute(groups[i], 16, ctx)
            packed = b"".join(g.to_bytes(2, "big") for g in new)
            return ipaddress.IPv6Address(packed).compressed

        return self._remember("ipv6", addr.compressed, make)

    def mac(self, text: str) -> str:
        sep = text[2]
        octets = [int(x, 16) for x in text.split(sep)]
        if all(x == 0 for x in octets) or all(x == 0xFF for x in octets) or octets[0] & 1:
            return text
        key = ":".join(f"{x:02x}" for x in octets)

        def make() -> str:
            oui = key[:8]
            tail = self._permute(int.from_bytes(bytes(octets[3:]), "big"), 24, "mac:" + oui)
            return oui + ":" + ":".join(f"{b:02x}" for b in tail.to_bytes(3, "big"))

        pseudo = self._remember("mac", key, make)
        pseudo = pseudo.replace(":", sep)
        return pseudo.upper() if text.isupper() else pseudo

    # -- text ----------------------------------------------------------------------
    def apply(self, block: bytes) -> tuple[bytes, dict[str, int]]:
        """``block`` (complete lines) with every name and address replaced, and
        how many of each kind were replaced."""
        spans = self._spans(block)
        if not spans:
            return block, {}
        counts: dict[str, int] = {}
        out: list[bytes] = []
        last = 0
        for s, e, repl, kind in spans:
            out.append(block[last:s])
            out.append(repl)
            last = e
            counts[kind] = counts.get(kind, 0) + 1
        out.append(block[last:])
        return b"".join(out), counts

    def extents(self, block: bytes) -> list[tuple[int, int]]:
        """Where :meth:`apply` would replace (the long-line cutter avoids them)."""
        return [(s, e) for s, e, _, _ in self._spans(block)]

    def _spans(self, block: bytes) -> list[tuple[int, int, bytes, str]]:
        low = block.lower()
        taken = _Intervals()
        marker = low.find(b"[redacted:")            # what the secret rules wrote stays as it is
        while marker >= 0:
            end = low.find(b"]", marker)
            end = len(low) if end < 0 else end + 1
            taken.add(marker, end)
            taken.payload[marker] = None
            marker = low.find(b"[redacted:", end)
        for finder in (self._emails, self._fqdns, self._known_names, self._ipv6s, self._macs,
                       self._ipv4s, self._keywords):
            for s, e, repl, kind in finder(block, low):
                if taken.add(s, e):
                    new = repl.encode()
                    # A name kept as it is (public domain, loopback) is still claimed,
                    # so no later finder rewrites a part of it.
                    taken.payload[s] = (new, kind) if new.lower() != low[s:e] else None
        return [(s, e, *taken.payload[s]) for s, e in taken.items() if taken.payload[s]]

    def _emails(self, block: bytes, low: bytes):
        at = low.find(b"@")
        while at >= 0:
            local = _EMAIL_LOCAL_BACK.match(low[max(0, at - 64):at][::-1])
            dom = _DOMAIN.match(low, at + 1)
            if local and dom and local.end():
                s, e = at - local.end(), dom.end()
                lp = low[s:at]
                if not lp.startswith(b".") and not lp.endswith(b".") and \
                        (e >= len(low) or low[e] not in _NAME_CHARS) and \
                        (s == 0 or low[s - 1] not in _NAME_CHARS) and \
                        dom.group().rsplit(b".", 1)[1].decode() in self._tlds:
                    yield s, e, self.email(low[s:e].decode()), "email"
            at = low.find(b"@", at + 1)

    def _fqdns(self, block: bytes, low: bytes):
        for m in self._tld_rx.finditer(low):
            end = m.end()
            back = _FQDN_BACK.match(low[max(0, m.start() - 250):m.start()][::-1])
            if not back or not back.end():
                continue
            start = m.start() - back.end()
            while start < m.start() and low[start] in b".-":
                start += 1
            name = low[start:end]
            labels = name.split(b".")
            if len(labels) < 2 or any(not l or l[:1] == b"-" or l[-1:] == b"-" for l in labels):
                continue
            if labels[0].isdigit() and all(l.isdigit() for l in labels[:-1]):
                continue
            yield start, end, self.domain(name.decode()), "domain"

    def _known_names(self, block: bytes, low: bytes):
        for literal, kind, make in self._names:
            p = low.find(literal)
            while p >= 0:
                e = p + len(literal)
                if (p == 0 or low[p - 1] not in _WORD_CHARS) and (e >= len(low) or low[e] not in _WORD_CHARS):
                    yield p, e, make(literal.decode()), kind
                p = low.find(literal, p + 1)

    def _keywords(self, block: bytes, low: bytes):
        for word in self.keywords:
            literal = word.encode()
            p = low.find(literal)
            while p >= 0:
                yield p, p + len(literal), self.keyword(word), "keyword"
                p = low.find(literal, p + len(literal))

    def _ipv4s(self, block: bytes, low: bytes):
        # Anchored on the dots (a literal prefix the regex engine finds fast); the
        # first octet is read backwards.
        for m in _IPV4_TAIL.finditer(low):
            d = m.start()
            s = d
            while s > 0 and d - s < 3 and low[s - 1] in _DIGITS:
                s -= 1
            e = m.end()
            if s == d or (s and low[s - 1] in _IPV4_BEFORE):
                continue
            if e < len(low) and (low[e] in _DIGITS or
                                 low[e] == 46 and e + 1 < len(low) and low[e + 1] in _DIGITS):
                continue
            text = low[s:e].decode()
            parts = text.split(".")
            if any(len(part) > 1 and part[0] == "0" or int(part) > 255 for part in parts):
                continue
            yield s, e, self.ipv4(text), "ipv4"

    def _ipv6s(self, block: bytes, low: bytes):
        pos = 0
        for m in _IPV6_ANCHOR.finditer(low):
            if m.start() < pos:
                continue
            back = _HEXCOLON_BACK.match(low[max(0, m.start() - 40):m.start()][::-1])
            s = m.start() - back.end()
            fwd = _HEXCOLON.match(low, m.start())
            e = fwd.end()
            pos = e
            if s and low[s - 1] in _IPV6_BEFORE or e < len(low) and low[e] in _IPV6_AFTER:
                continue
            text = low[s:e].decode()
            if "::" not in text and text.count(":") != 7:
                continue
            try:
                ipaddress.IPv6Address(text)
            except ValueError:
                continue
            yield s, e, self.ipv6(text), "ipv6"

    def _macs(self, block: bytes, low: bytes):
        for rx in (_MAC_COLON, _MAC_DASH):
            for m in rx.finditer(low):
                s, e = m.start() - 2, m.end()
                if s < 0 or low[s] not in _HEX or low[s + 1] not in _HEX:
                    continue
                if s and low[s - 1] in _MAC_AROUND or e < len(low) and low[e] in _MAC_AROUND:
                    continue
                yield s, e, self.mac(block[s:e].decode()), "mac"


@lru_cache(maxsize=4096)
def _is_public(name: str) -> bool:
    labels = name.split(".")
    return name == "localhost" or any(".".join(labels[i:]) in PUBLIC_DOMAINS for i in range(len(labels) - 1))


def _is_netmask(value: int) -> bool:
    inverted = ~value & 0xFFFFFFFF
    return inverted & (inverted + 1) == 0


_V4_SPECIAL_FIRST = frozenset({10, 100, 127, 169, 172, 192})
# Second octets that make those first octets private (or link-local / shared).
_V4_PRIVATE_SECOND = {100: frozenset(range(64, 128)), 169: frozenset({254}),
                      172: frozenset(range(16, 32)), 192: frozenset({168})}
_V4_PUBLIC_FIRST = frozenset(v for v in range(1, 224) if v not in _V4_SPECIAL_FIRST)

_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")
_WORD_CHARS = _NAME_CHARS
_DIGITS = frozenset(b"0123456789")
_IPV4_BEFORE = frozenset(b"0123456789.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IPV6_BEFORE = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyz_:.")
_IPV6_AFTER = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyz_:.")
_MAC_AROUND = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyz_:-.")
_EMAIL_LOCAL_BACK = re.compile(rb"[a-z0-9._%+-]{1,64}")
_DOMAIN = re.compile(rb"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_FQDN_BACK = re.compile(rb"[a-z0-9.-]{1,250}")
_IPV4_TAIL = re.compile(rb"\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_IPV6_ANCHOR = re.compile(rb"::|:[0-9a-f]{1,4}:[0-9a-f]{1,4}:")
_HEXCOLON_BACK = re.compile(rb"[0-9a-f:]{0,39}")
_HEXCOLON = re.compile(rb"[0-9a-f:]{2,39}")
_MAC_COLON = re.compile(rb":[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}")
_MAC_DASH = re.compile(rb"-[0-9a-f]{2}-[0-9a-f]{2}-[0-9a-f]{2}-[0-9a-f]{2}-[0-9a-f]{2}")
_HEX = frozenset(b"0123456789abcdef")


class _Intervals:
    """Non-overlapping [start, end) intervals, first come first kept."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self.payload: dict[int, Optional[tuple[bytes, str]]] = {}

    def add(self, s: int, e: int) -> bool:
        i = bisect.bisect_right(self._starts, s)
        if i and self._ends[i - 1] > s or i < len(self._starts) and self._starts[i] < e:
            return False
        self._starts.insert(i, s)
        self._ends.insert(i, e)
        return True

    def items(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends))
