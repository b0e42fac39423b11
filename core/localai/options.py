"""LocalAI's ``options:`` list: ``name`` or ``name:value`` entries, parsed against a declared table.

Everything after the first colon is the value, so ``grpc_servers:host1:50052,host2:50052`` keeps
its ports. A name without a value means ``true``. Unknown names and unparsable values raise
``ValueError`` naming the option, never pass silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TRUE = {"true", "1", "yes", "on", "enabled", "enable", "y"}
FALSE = {"false", "0", "no", "off", "disabled", "disable", "n"}


def parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ValueError(f"expected a boolean (true/1/yes/on/enabled or false/0/no/off/disabled), got {value!r}")


def parse_int(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def parse_float(value: str) -> float:
    try:
        return float(value.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None


def parse_str(value: str) -> str:
    return value


def parse_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_hostports(value: str) -> list[str]:
    """Comma-separated ``host:port`` endpoints (``[v6]:port`` too); at least one."""
    items = parse_list(value)
    if not items:
        raise ValueError("expected a comma-separated list of host:port, got nothing")
    for item in items:
        host, sep, port = item.rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port (e.g. 192.168.1.10:50052), got {item!r}")
    return items


PARSERS: dict[str, Callable[[str], Any]] = {
    "bool": parse_bool,
    "int": parse_int,
    "float": parse_float,
    "str": parse_str,
    "list": parse_list,
    "hostports": parse_hostports,
}


@dataclass
class OptionSpec:
    """One documented option: its key in the parsed dict, its type, default and meaning.

    ``supported`` is ``None`` when the engine honours it, else why it cannot here.
    ``env`` names an environment variable that applies when the YAML does not set it.
    ``minimum``/``maximum`` bound a number (inclusive), checked wherever the value comes from.
    """

    name: str
    type: str
    help: str
    default: Any = None
    aliases: tuple[str, ...] = ()
    env: str | None = None
    supported: str | None = None
    choices: tuple[str, ...] = field(default=())
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for a backend environment's ``metadata.json`` (the server parses options from it)."""
        return {"name": self.name, "type": self.type, "help": self.help, "default": self.default,
                "aliases": list(self.aliases), "env": self.env, "supported": self.supported, "choices": list(self.choices),
                "minimum": self.minimum, "maximum": self.maximum}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptionSpec:
        if data.get("type") not in PARSERS:
            raise ValueError(f"option {data.get('name')!r} has unknown type {data.get('type')!r}")
        return cls(name=data["name"], type=data["type"], help=data.get("help", ""), default=data.get("default"),
                   aliases=tuple(data.get("aliases") or ()), env=data.get("env"), supported=data.get("supported"),
                   choices=tuple(data.get("choices") or ()), minimum=data.get("minimum"), maximum=data.get("maximum"))

    def parse(self, raw: str | None) -> Any:
        if raw is None:
            if self.type == "bool":
                return True
            raise ValueError("needs a value (name:value)")
        value = PARSERS[self.type](raw)
        if self.choices and value not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {raw!r}")
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            expected = (f"between {low:g} and {high:g}" if low is not None and high is not None
                        else f"at least {low:g}" if low is not None else f"at most {high:g}")
            raise ValueError(f"expected {expected}, got {raw!r}")
        return value


# An option table entry with this name accepts every ``--flag[=value]`` entry as is (engines with their own flags).
PASSTHROUGH = "--*"


def split_entry(entry: str) -> tuple[str, str | None]:
    name, sep, value = str(entry).partition(":")
    return name.strip(), (value if sep else None)


def parse_option_list(entries: list[str], specs: list[OptionSpec], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Parse ``entries`` into ``{spec.name: value}``; defaults and env vars fill the rest."""
    index: dict[str, OptionSpec] = {}
    for spec in specs:
        for key in (spec.name, *spec.aliases):
            index[key.lower()] = spec
    result: dict[str, Any] = {}
    passthrough = index.get(PASSTHROUGH)
    for entry in entries:
        if passthrough is not None and str(entry).startswith("--"):
            # An engine's own command-line flags (vLLM's --max-num-seqs=8): kept whole; the plugin checks them.
            result.setdefault(PASSTHROUGH, []).append(str(entry))
            continue
        name, raw = split_entry(entry)
        found = index.get(name.lower())
        if found is None:
            known = ", ".join(sorted(s.name for s in specs))
            raise ValueError(f"unknown option {name!r} (known options: {known})")
        spec = found
        if spec.supported is not None:  # documented, but no effect on this engine here: refused, never ignored
            raise ValueError(f"option {name!r} is not supported: {spec.supported}")
        try:
            result[spec.name] = spec.parse(raw)
        except ValueError as exc:
            alias = f" ({spec.name})" if name.lower() != spec.name.lower() else ""
            raise ValueError(f"option {name!r}{alias}: {exc}") from None
    for spec in specs:
        if spec.name in result:
            continue
        if spec.env and environ and environ.get(spec.env, "") != "":
            if spec.supported is not None:
                raise ValueError(f"option {spec.name!r} from ${spec.env} is not supported: {spec.supported}")
            try:
                result[spec.name] = spec.parse(environ[spec.env])
            except ValueError as exc:
                raise ValueError(f"option {spec.name!r} from ${spec.env}: {exc}") from None
        elif spec.default is not None:
            result[spec.name] = spec.default
    return result
