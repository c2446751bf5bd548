"""Settings: where each value comes from and which source wins.

Precedence, highest first::

    managed (enforced)  >  flag  >  env JCDIAG_*  >  managed  >  config file  >  default

*Managed* settings are what an MDM pushes: on macOS the managed preferences of the
domain ``com.jumpcloud.jcdiag`` (``/Library/Managed Preferences/com.jumpcloud.jcdiag.plist``),
on Windows the policy key ``HKLM\\SOFTWARE\\Policies\\JumpCloud\\jcdiag``.  A managed
setting normally behaves like a strong default (an admin at the keyboard may still
override it with a flag or variable), but one listed as *enforced* wins over everything:
a fleet's upload server or recipient keys cannot be changed from the command line.

* macOS: an array ``EnforcedSettings`` in the same plist names the enforced keys.
* Windows: a ``REG_MULTI_SZ`` value ``Enforced`` under the policy key names them.

Managed key names are matched loosely (``token_file``, ``TokenFile`` and ``tokenFile``
are the same key) because plist and registry conventions are CamelCase; the TOML file
uses the snake_case names exactly.  Relative paths in a config file are relative to the
file's folder; ``~`` is expanded everywhere.

The config file is the system-wide one for the OS (:data:`SYSTEM_CONFIG`), or
``--config FILE`` / ``$JCDIAG_CONFIG`` instead of it (never both: an explicit file
replaces the system one).  A missing system file is normal; a missing explicit file is
an error.

Every bad value is reported as ``<where>: <key>: <what is wrong>`` so an admin can fix
a fleet's config from one line of a command's output; unknown keys are errors that
list the known ones, since a misspelt ``recipents`` silently ignored would send
bundles to the wrong keys.

This module is light (no click, no py7zr) so the CLI can load settings before it
decides what to import.
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any, Callable, Mapping, NamedTuple, Optional
from urllib.parse import urlsplit

ENV_PREFIX = "JCDIAG_"
CONFIG_ENV = "JCDIAG_CONFIG"
MANAGED_DOMAIN = "com.jumpcloud.jcdiag"
MANAGED_PLIST = Path("/Library/Managed Preferences") / f"{MANAGED_DOMAIN}.plist"
POLICY_KEY = r"HKLM\SOFTWARE\Policies\JumpCloud\jcdiag"
PLIST_ENFORCED = "EnforcedSettings"
REGISTRY_ENFORCED = "Enforced"

#: The system-wide config file per platform family (Windows: under %ProgramData%).
SYSTEM_CONFIG = {
    "linux": Path("/etc/jcdiag/config.toml"),
    "macos": Path("/Library/Application Support/jcdiag/config.toml"),
}


class ConfigError(Exception):
    """Bad configuration; ``str()`` is one line per problem, each naming where, key and fix."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class _Bad(ValueError):
    """A value a parser rejects; the message says what is wrong and how to write it."""


# --------------------------------------------------------------------------- value parsers

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SECONDS_ONLY = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")


def _shown(value: Any) -> str:
    """A value as it is quoted in messages: strings in double quotes, like TOML writes them."""
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):  # pragma: no cover - defensive
        return repr(value)


def parse_size(value: Any) -> int:
    """``50M``, ``1.5GiB``, ``200k`` or a plain number of bytes (binary multiples)."""
    if isinstance(value, bool):
        raise _Bad(f"{_shown(value)} is not a size (use e.g. 50M)")
    if isinstance(value, int) and value >= 0:
        return value
    m = _SIZE.match(value) if isinstance(value, str) else None
    if not m:
        raise _Bad(f"{_shown(value)} is not a size (use e.g. 50M)")
    factor = 1024 ** " kmgt".index((m.group(2) or " ").lower())
    return int(float(m.group(1)) * factor)


def parse_duration(value: Any) -> float:
    """``14d``, ``90m``, ``2h30m``, ``30s``, ``1w`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise _Bad(f"{_shown(value)} is not a duration (use e.g. 30m, 2h, 14d)")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    from .logtime import duration_seconds      # the one duration grammar (2h, 2h30m, 1d12h)

    if isinstance(value, str) and _SECONDS_ONLY.match(value):
        return float(value)
    seconds = duration_seconds(value) if isinstance(value, str) else None
    if seconds is None:
        raise _Bad(f"{_shown(value)} is not a duration (use e.g. 30m, 2h, 14d)")
    return seconds


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(value: Any) -> bool:
    """``true``/``false`` (TOML, plist), 1/0 (registry DWORD) or yes/no/on/off (env)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Bad(f"{_shown(value)} is not true or false")


def parse_url(value: Any) -> str:
    """An http(s) URL with a host, kept exactly as written: a trailing slash matters to some
    tus servers (one that answers only at ``/files/``)."""
    if not isinstance(value, str):
        raise _Bad(f"{_shown(value)} is not a URL (use e.g. https://intake.example.com)")
    text = value.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        raise _Bad(f"{_shown(mask_url(text))} is not an http(s) URL (use e.g. https://intake.example.com)")
    return text


def parse_text(value: Any) -> str:
    """A short printable string (a case ID)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)                       # case = 1234 in TOML is meant as text
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{_shown(value)} is not a non-empty text")
    text = value.strip()
    if len(text) > 128 or not text.isprintable():
        raise _Bad(f"{_shown(text)} must be printable text of at most 128 characters")
    return text


def parse_when_text(value: Any) -> str:
    """A WHEN (ISO date/time or ``3d``), checked now but kept as text: ``3d`` means 3 days
    before each run, not before the day the config was read."""
    from .logtime import parse_when

    if not isinstance(value, str):
        raise _Bad(f"{_shown(value)} is not a date/time or duration (use e.g. 2026-11-01 or 3d)")
    try:
        parse_when(value)
    except ValueError:
        raise _Bad(f"{_shown(value)} is not a date/time or duration (use e.g. 2026-11-01 or 3d)") from None
    return value.strip()


def parse_path(value: Any) -> Path:
    if isinstance(value, PurePath):
        return Path(value)
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{_shown(value)} is not a path")
    return Path(os.path.expanduser(value.strip()))


def parse_paths(value: Any) -> tuple[Path, ...]:
    """A list of paths; a single string is a list of one."""
    if isinstance(value, (str, PurePath)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _Bad(f"{_shown(value)} is not a list of paths (use e.g. [\"/etc/jcdiag/support.pub.pem\"])")
    return tuple(parse_path(item) for item in value)


# --------------------------------------------------------------------------- the settings


@dataclass(frozen=True)
class Spec:
    """One setting: its parser, default, and how env spells it."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    env_aliases: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_path(self) -> bool:
        return self.parse in (parse_path, parse_paths)


DEFAULT_ONLINE_URL = "https://console.jumpcloud.com"

SPECS: dict[str, Spec] = {s.name: s for s in (
    Spec("server", parse_url, None, "Intake base URL (tus at URL/files/), or any tus endpoint"),
    Spec("token_file", parse_path, None, "File whose first line is the upload token"),
    Spec("recipients", parse_paths, (), "Support public keys (PEM) bundles are sealed to"),
    Spec("case", parse_text, None, "Default support case ID"),
    Spec("output", parse_path, Path("."), "Folder bundles are written to"),
    Spec("max_file_size", parse_size, 50 * 1024 ** 2, "Per-file cap"),
    Spec("max_bundle_size", parse_size, 1024 ** 3, "Cap on everything collected"),
    Spec("spool_dir", parse_path, None, "Folder of bundles waiting to upload (default: per OS)",
         env_aliases=("JCDIAG_SPOOL",)),
    Spec("spool_max_size", parse_size, 2 * 1024 ** 3, "Spool size cap; oldest dropped first"),
    Spec("spool_max_age", parse_duration, 30 * 86400.0, "Spooled bundles older than this are dropped"),
    Spec("since", parse_when_text, None, "Keep log records from WHEN on"),
    Spec("online_url", parse_url, DEFAULT_ONLINE_URL, "HTTPS URL the clock is compared with"),
    Spec("low_priority", parse_bool, None, "Run at low CPU and I/O priority (default: when not on a terminal)"),
    Spec("max_runtime", parse_duration, None, "Stop the run after this long"),
)}


def _loose(name: str) -> str:
    """The form managed key names are compared in: ``TokenFile`` == ``token_file``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_LOOSE = {_loose(name): name for name in SPECS}


class Setting(NamedTuple):
    name: str
    value: Any
    source: str


class Settings:
    """The effective settings and where each came from."""

    def __init__(self, chosen: dict[str, Setting], sources_read: list[str], notes: list[str]):
        self._chosen = chosen
        #: Where settings were looked for and found: ``file /etc/...``, ``managed /Library/...``.
        self.sources_read = sources_read
        #: Things a person should know, e.g. a flag ignored because a setting is enforced.
        self.notes = notes

    def get(self, name: str) -> Any:
        return self._chosen[name].value

    def source(self, name: str) -> str:
        """``flag``, ``env JCDIAG_X``, ``managed``, ``managed (enforced)``, ``file PATH`` or ``default``."""
        return self._chosen[name].source

    def items(self) -> list[Setting]:
        """Every setting as (name, value, source), in the documented order."""
        return [self._chosen[name] for name in SPECS]

    def __getitem__(self, name: str) -> Any:
        return self.get(name)


# --------------------------------------------------------------------------- sources


class _Layer(NamedTuple):
    """Values of one source, already parsed, and which of them are enforced."""

    label: str                        # the source() text for its values
    values: dict[str, Any]
    enforced: frozenset[str] = frozenset()


def _parse_value(where: str, name: str, raw: Any, base_dir: Optional[Path] = None) -> Any:
    """``raw`` parsed for setting ``name``; ``where`` (file and key, env variable, flag) leads the
    message when it is bad."""
    try:
        value = SPECS[name].parse(raw)
    except _Bad as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if base_dir is not None and SPECS[name].is_path:
        value = _relative_to(base_dir, value)
    return value


def _parse_entries(where: str, entries: Mapping[str, Any], *, loose: bool,
                   base_dir: Optional[Path] = None) -> dict[str, Any]:
    """Parse the raw ``entries`` of a file or managed source; every problem is reported at once."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, raw in entries.items():
        name = _BY_LOOSE.get(_loose(key)) if loose else (key if key in SPECS else None)
        try:
            if name is None:
                raise ConfigError(f"{where}: {_unknown(key)}")
            values[name] = _parse_value(f"{where}: {key}", name, raw, base_dir)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return values


def _unknown(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key.lower(), list(SPECS), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown key {_shown(key)}{hint} (known keys: {', '.join(SPECS)})"


def _relative_to(base: Path, value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_relative_to(base, v) for v in value)
    return value if value.is_absolute() else base / value


def system_config_path(family: str, env: Mapping[str, str] = os.environ) -> PurePath:
    """The system-wide config file of ``family`` (Windows: %ProgramData%\\jcdiag\\config.toml)."""
    if family == "windows":
        program_data = env.get("ProgramData") or env.get("PROGRAMDATA") or r"C:\ProgramData"
        return PureWindowsPath(program_data) / "jcdiag" / "config.toml"
    return SYSTEM_CONFIG.get(family, SYSTEM_CONFIG["linux"])


def _file_layer(path: Path, explicit: bool) -> Optional[_Layer]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 only
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: no such config file (check --config or {CONFIG_ENV})") from None
        return None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _Layer(f"file {path}", _parse_entries(str(path), raw, loose=False, base_dir=path.parent))


def _enforced_names(where: str, raw: Any, field: str) -> tuple[set[str], list[str]]:
    if raw is None:
        return set(), []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(x, str) for x in raw):
        return set(), [f"{where}: {field}: {_shown(raw)} is not a list of setting names"]
    names, problems = set(), []
    for item in raw:
        name = _BY_LOOSE.get(_loose(item))
        if name is None:
            problems.append(f"{where}: {field}: {_unknown(item)}")
        else:
            names.add(name)
    return names, problems


def _managed_layer(where: str, entries: Mapping[str, Any], enforced_field: str) -> Optional[_Layer]:
    """A managed source's values; an enforced name with no value enforces nothing."""
    entries = {k: v for k, v in entries.items() if k}          # the registry's unnamed default
    enforced_raw = None
    for key in list(entries):
        if _loose(key) == _loose(enforced_field):
            enforced_raw = entries.pop(key)
    problems: list[str] = []
    try:
        values = _parse_entries(where, entries, loose=True)
    except ConfigError as exc:
        problems, values = exc.problems, {}
    enforced, more = _enforced_names(where, enforced_raw, enforced_field)
    if problems or more:
        raise ConfigError(problems + more)
    if not values:
        return None
    return _Layer("managed", values, frozenset(enforced & set(values)))


def _plist_layer(path: Path) -> Optional[_Layer]:
    import plistlib

    where = f"managed preferences {path}"
    try:
        with open(path, "rb") as fh:
            raw = plistlib.load(fh)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except (plistlib.InvalidFileException, ValueError) as exc:
        raise ConfigError(f"{where}: not a valid property list ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the top level is not a dictionary")
    return _managed_layer(where, raw, PLIST_ENFORCED)


def _registry_layer(registry: Any) -> Optional[_Layer]:
    return _managed_layer(f"registry {POLICY_KEY}", registry.values(POLICY_KEY), REGISTRY_ENFORCED)


def _env_layers(env: Mapping[str, str]) -> list[_Layer]:
    """One layer per variable, so source() can name the variable.  A list variable
    (``JCDIAG_RECIPIENTS``) separates its paths with os.pathsep, as PATH does."""
    layers, problems = [], []
    for spec in SPECS.values():
        var = next((v for v in (spec.env, *spec.env_aliases) if env.get(v)), None)
        if var is None:
            continue
        raw: Any = env[var]
        if spec.parse is parse_paths:
            raw = [p for p in raw.split(os.pathsep) if p]
        try:
            layers.append(_Layer(f"env {var}", {spec.name: _parse_value(f"env {var}", spec.name, raw)}))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return layers


def _flag_layer(flags: Mapping[str, Any]) -> _Layer:
    unknown = [k for k in flags if k not in SPECS]
    if unknown:
        raise ValueError(f"not settings: {', '.join(unknown)} (known: {', '.join(SPECS)})")
    values, problems = {}, []
    for name, raw in flags.items():
        if raw is None or raw == () or raw == []:
            continue
        try:
            values[name] = _parse_value(SPECS[name].flag, name, raw)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return _Layer("flag", values)


def _interactive() -> bool:
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def load_settings(flags: Mapping[str, Any], *, family: str, env: Mapping[str, str] = os.environ,
                  config_file: Path | None = None, registry: Any = None,
                  managed_plist: Path | None = None, system_config: Path | None = None,
                  interactive: Optional[bool] = None) -> Settings:
    """The effective settings for one run.

    ``flags`` maps setting names to what the command line gave (None or empty = not
    given). ``family`` is the OS jcdiag runs on (``platforms.current_family()``, not
    ``--platform``): it picks the system config file and the managed source.
    ``config_file`` is ``--config FILE``; ``$JCDIAG_CONFIG`` is used when it is None.
    ``registry`` is a :class:`platforms.base.RegistryReader` (default on Windows: the
    live registry); ``managed_plist`` and ``system_config`` move the macOS managed
    preferences and the system file (tests).  ``interactive`` decides the default of
    ``low_priority`` (default: stdin and stderr are terminals).

    Raises :class:`ConfigError` naming every bad source, key and value.
    """
    explicit = config_file if config_file is not None else (
        Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    file_path = explicit if explicit is not None else (system_config or system_config_path(family, env))
    layers: list[_Layer] = []
    sources_read: list[str] = []
    file_layer = _file_layer(Path(str(file_path)), explicit is not None)
    if file_layer is not None:
        layers.append(file_layer)
        sources_read.append(f"file {file_path}")

    managed = None
    if family == "macos" or managed_plist is not None:
        plist = managed_plist or MANAGED_PLIST
        managed = _plist_layer(plist)
        if managed is not None:
            sources_read.append(f"managed {plist}")
    elif family == "windows":
        if registry is None and sys.platform.startswith("win"):  # pragma: no cover - Windows only
            from platforms.winregistry import WinRegReader
            registry = WinRegReader()
        if registry is not None:
            managed = _registry_layer(registry)
            if managed is not None:
                sources_read.append(f"managed {POLICY_KEY}")
    if managed is not None:
        layers.append(managed)
    layers += _env_layers(env)
    flag_layer = _flag_layer(flags)
    layers.append(flag_layer)

    chosen: dict[str, Setting] = {}
    notes: list[str] = []
    for name, spec in SPECS.items():
        default = spec.default
        if name == "low_priority":
            default = not (_interactive() if interactive is None else interactive)
        chosen[name] = Setting(name, default, "default")
        for layer in layers:                            # lowest precedence first
            if name in layer.values:
                chosen[name] = Setting(name, layer.values[name], layer.label)
        if managed is not None and name in managed.enforced:
            chosen[name] = Setting(name, managed.values[name], "managed (enforced)")
            if name in flag_layer.values and flag_layer.values[name] != managed.values[name]:
                notes.append(f"{spec.flag} is ignored: {name} is enforced by managed settings")
            elif any(name in layer.values for layer in layers if layer.label.startswith("env ")):
                notes.append(f"{spec.env} is ignored: {name} is enforced by managed settings")
    return Settings(chosen, sources_read, notes)


# --------------------------------------------------------------------------- display


_SENSITIVE_QUERY = re.compile(r"(token|key|secret|password|passwd|pwd|sig|signature|auth|credential)",
                              re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with the password in it and the values of secret-looking query parameters masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if user else f"***@{host}"
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        key, sep, _ = pair.partition("=")
        pairs.append(f"{key}=***" if sep and _SENSITIVE_QUERY.search(key) else pair)
    return parts._replace(netloc=netloc, query="&".join(pairs)).geturl()


def format_size(n: int) -> str:
    """Bytes as the shortest exact ``50M`` form, else plain bytes."""
    for unit, factor in (("T", 1024 ** 4), ("G", 1024 ** 3), ("M", 1024 ** 2), ("k", 1024)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def format_duration(seconds: float) -> str:
    for unit, factor in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    return f"{seconds:g}s"


def display_value(name: str, value: Any, *, for_json: bool = False) -> Any:
    """How a setting is shown: URLs masked, paths as text, and for people sizes and durations
    as written (``50M``, ``14d``); ``for_json`` keeps them as numbers (bytes, seconds).

    The token file is shown by path only; its contents are never read here.
    """
    if value is None:
        return None
    spec = SPECS[name]
    if spec.parse is parse_url:
        return mask_url(value)
    if spec.parse is parse_size and not for_json:
        return format_size(value)
    if spec.parse is parse_duration and not for_json:
        return format_duration(value)
    if spec.parse is parse_paths:
        return [str(p) for p in value]
    if spec.parse is parse_path:
        return str(value)
    return value

