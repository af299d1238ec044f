"""Typed, frozen settings built from the parameter table and a main.cf-syntax file.

Values keep their main.cf text and are expanded lazily when read (``myorigin = $myhostname``
follows later changes). ``Settings.load`` checks every explicitly set parameter up front and
reports all problems at once, each with ``file:line``.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pymailsrv.config.params import PARAMETERS, Param
from pymailsrv.config.parser import Entry, expand, parse_text, split_list
from pymailsrv.errors import ConfigError, ConfigErrors
from pymailsrv.net.networks import Network, parse_networks

log = logging.getLogger("pymailsrv.config")

_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass(frozen=True, slots=True)
class Listen:
    host: str  # "" = every interface
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_time(text: str, unit: str = "s") -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not m:
        raise ValueError(f'bad time value "{text}" (a number with an optional unit s, m, h, d or w)')
    return float(m.group(1)) * _TIME_UNITS[m.group(2) or unit]


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)b?\s*", text.lower())
    if not m:
        raise ValueError(f'bad size value "{text}" (a number of bytes, optionally with k, m or g)')
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("yes", "true", "on", "1"):
        return True
    if low in ("no", "false", "off", "0"):
        return False
    raise ValueError(f'bad boolean value "{text}" (yes or no)')


def parse_listen(text: str) -> list[Listen]:
    result = []
    for item in split_list(text):
        m = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d+)|(\d+)", item)
        if not m:
            raise ValueError(f'bad listen address "{item}" (host:port, [ipv6]:port or port)')
        host = m.group(1) or m.group(2) or ""
        port = int(m.group(3) or m.group(4))
        if not 0 <= port <= 65535:
            raise ValueError(f'bad port {port} in "{item}" (0-65535)')
        result.append(Listen(host, port))
    return result


def _default_hostname() -> str:
    name = socket.getfqdn()
    return name if name and name != "localhost" else socket.gethostname() or "localhost"


class Settings:
    """Read-only view of the configuration; pass it through constructors."""

    def __init__(
        self,
        values: Mapping[str, str] | None = None,
        *,
        origins: Mapping[str, tuple[str, int]] | None = None,
        table: Mapping[str, Param] = PARAMETERS,
    ) -> None:
        self._table = table
        self._values = dict(values or {})
        self._origins = dict(origins or {})
        self._cache: dict[str, object] = {}
        self._dynamic = {"myhostname": _default_hostname()}

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, filename: str = "<string>", **overrides: str) -> Settings:
        return cls._from_entries(parse_text(text, filename), overrides)

    @classmethod
    def load(cls, path: str, **overrides: str) -> Settings:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration: {exc.strerror}", file=path) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"cannot read configuration: not UTF-8 text (byte {exc.start})", file=path) from exc
        return cls.from_text(text, path, **overrides)

    @classmethod
    def _from_entries(cls, entries: Iterable[Entry], overrides: Mapping[str, str]) -> Settings:
        values: dict[str, str] = {}
        origins: dict[str, tuple[str, int]] = {}
        for e in entries:
            values[e.name] = e.value
            origins[e.name] = (e.file, e.line)
        values.update(overrides)
        settings = cls(values, origins=origins)
        settings.validate()
        return settings

    def replace(self, **changes: str) -> Settings:
        """A copy with some values changed (tests, command-line overrides)."""
        values = dict(self._values)
        values.update(changes)
        new = Settings(values, origins=self._origins, table=self._table)
        new.validate()
        return new

    # --- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every explicitly set parameter; raise one ConfigError listing every problem."""
        errors: list[ConfigError] = []
        classes = set()
        try:
            classes = set(self.get_list("smtpd_restriction_classes"))
        except ConfigError as exc:
            errors.append(exc)
        for name in self._values:
            file, line = self._origins.get(name, (None, None))
            if name not in self._table:
                if name in classes:
                    continue
                close = difflib.get_close_matches(name, self._table, n=1)
                hint = f'; did you mean "{close[0]}"?' if close else ""
                where = f"{file}:{line}: " if file else ""
                log.warning("%sunknown parameter \"%s\"%s", where, name, hint)
                continue
            try:
                self._typed(name)
            except ConfigError as exc:
                errors.append(ConfigError(exc.message, file=file, line=line))
            except ValueError as exc:
                errors.append(ConfigError(f"{name}: {exc}", file=file, line=line))
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ConfigErrors(errors)

    # --- raw access ---------------------------------------------------------------------------
    def _lookup(self, name: str) -> str | None:
        if name in self._values:
            return self._values[name]
        param = self._table.get(name)
        if param is None:
            return None
        if not param.default and name in self._dynamic:
            return self._dynamic[name]
        if name == "mydomain" and not param.default:
            host = self.expanded("myhostname")
            return host.partition(".")[2] or host
        return param.default

    def raw(self, name: str) -> str:
        """The unexpanded text of a parameter (what ``postconf`` prints)."""
        value = self._lookup(name)
        if value is None:
            raise KeyError(name)
        return value

    def expanded(self, name: str) -> str:
        return expand(self.raw(name), self._lookup)

    def is_set(self, name: str) -> bool:
        return name in self._values

    def explicit(self) -> dict[str, str]:
        return dict(self._values)

    def names(self) -> list[str]:
        return sorted(self._table)

    def param(self, name: str) -> Param:
        return self._table[name]

    # --- typed access -------------------------------------------------------------------------
    def _typed(self, name: str) -> object:
        if name in self._cache:
            return self._cache[name]
        param = self._table[name]
        text = self.expanded(name)
        value: object
        kind = param.type
        if kind == "int":
            auto = param.auto is not None and text.strip().lower() == "auto"
            try:
                value = param.auto() if auto and param.auto is not None else int(text.strip())
            except ValueError:
                raise ValueError(f'bad number "{text}"') from None
            if param.minimum is not None and value < param.minimum:
                raise ValueError(f"{value} is below the minimum {param.minimum}")
            if param.maximum is not None and value > param.maximum:
                raise ValueError(f"{value} is above the maximum {param.maximum}")
        elif kind == "bool":
            value = parse_bool(text)
        elif kind == "time":
            value = parse_time(text, param.unit)
        elif kind == "size":
            value = parse_size(text)
        elif kind in ("list",):
            value = split_list(text)
        elif kind == "listen":
            value = parse_listen(text)
        elif kind == "enum":
            low = text.strip().lower()
            if low not in param.choices:
                raise ValueError(f'bad value "{text}" (one of: {", ".join(param.choices)})')
            value = low
        elif kind == "file":
            value = text.strip()
            if value and not os.path.isfile(str(value)):
                raise ValueError(f'file "{value}" does not exist')
        else:
            value = text.strip()
        self._cache[name] = value
        return value

    def _get(self, name: str) -> object:
        try:
            return self._typed(name)
        except ValueError as exc:
            file, line = self._origins.get(name, (None, None))
            raise ConfigError(f"{name}: {exc}", file=file, line=line) from None

    def get_str(self, name: str) -> str:
        return str(self._get(name))

    def get_int(self, name: str) -> int:
        value = self._get(name)
        assert isinstance(value, int)
        return value

    def get_bool(self, name: str) -> bool:
        return bool(self._get(name))

    def get_seconds(self, name: str) -> float:
        value = self._get(name)
        assert isinstance(value, float)
        return value

    def get_size(self, name: str) -> int:
        return self.get_int(name)

    def get_list(self, name: str) -> list[str]:
        value = self._get(name)
        assert isinstance(value, list)
        return [str(v) for v in value]

    def get_listen(self, name: str) -> list[Listen]:
        value = self._get(name)
        assert isinstance(value, list)
        return [v for v in value if isinstance(v, Listen)]

    def user_list(self, name: str) -> list[str]:
        """A restriction class (a name from smtpd_restriction_classes), split as a list."""
        return split_list(expand(self._values.get(name, ""), self._lookup))

    def get_networks(self, name: str) -> list[Network]:
        """A list of networks (``10.0.0.0/8``, ``[2001:db8::]/32``, addresses); an item that is
        none is ignored with a warning (once)."""
        return self._networks(name, self.get_list(name))

    def mynetworks(self) -> list[Network]:
        """mynetworks, or the networks mynetworks_style derives (host: loopback only)."""
        items = self.get_list("mynetworks")
        if not items:
            style = self.get_str("mynetworks_style")
            items = ["127.0.0.0/8", "::1/128"]
            if style != "host":
                items += _local_subnets(style)
        return self._networks("mynetworks", items)

    def _networks(self, name: str, items: list[str]) -> list[Network]:
        key = f"{name} as networks"
        if key not in self._cache:
            nets, bad = parse_networks(items)
            for item in bad:
                log.warning('%s: ignoring "%s" (not a network or address)', name, item)
            self._cache[key] = nets
        cached = self._cache[key]
        assert isinstance(cached, list)
        return list(cached)


def _local_subnets(style: str) -> list[str]:
    """The subnets of this machine's addresses (mynetworks_style = subnet/class)."""
    nets: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return nets
    for info in infos:
        addr = str(info[4][0])
        if addr.startswith("127."):
            continue
        prefix = 8 if style == "class" else 24
        nets.append(str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False)))
    return nets
