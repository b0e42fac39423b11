"""Which tool-call parser a model gets: named in its YAML, else found by template markers or architecture.

Built-in families are registered here; plugins add theirs through the ``register_tool_parsers`` hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localai.errors import invalid
from localai.tools import parsers

log = logging.getLogger("localai.tools")

Factory = Callable[[], parsers.ToolCallParser]
DEFAULT = "generic"


@dataclass
class ParserEntry:
    name: str
    factory: Factory
    architectures: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()


class ParserRegistry:
    def __init__(self) -> None:
        self.entries: dict[str, ParserEntry] = {}

    def register(self, name: str, factory: Factory, *, architectures: tuple[str, ...] | list[str] = (),
                 markers: tuple[str, ...] | list[str] = ()) -> None:
        """Add (or replace) a parser family; later registrations win marker and architecture ties."""
        self.entries[name] = ParserEntry(name, factory, tuple(a.lower() for a in architectures), tuple(markers))

    def names(self) -> list[str]:
        return sorted(self.entries)

    def choose(self, configured: str | None, template: str | None, architecture: str | None) -> str:
        """The YAML's ``tool_parser:``, else the first family whose marker the template contains, else by architecture."""
        if configured:
            if configured not in self.entries:
                raise invalid(f"tool_parser {configured!r} is not known; known parsers: {', '.join(self.names())}",
                              code="unknown_tool_parser")
            return configured
        entries = list(self.entries.values())[::-1]
        for e in entries:
            if template and any(m in template for m in e.markers):
                return e.name
        arch = (architecture or "").lower()
        for e in entries:
            if arch and arch in e.architectures:
                return e.name
        return DEFAULT

    def create(self, name: str) -> parsers.ToolCallParser:
        return self.entries[name].factory()


def builtin() -> ParserRegistry:
    reg = ParserRegistry()
    reg.register("generic", parsers.GenericParser)
    reg.register("json", parsers.JsonParser)
    reg.register("llama3", parsers.Llama3Parser, architectures=("llama",), markers=("<|python_tag|>",))
    reg.register("hermes", parsers.HermesParser, architectures=("qwen2", "qwen2moe", "qwen3", "qwen3moe"),
                 markers=("<tool_call>",))
    reg.register("mistral", parsers.MistralParser, architectures=("mistral", "mistral3"), markers=("[TOOL_CALLS]",))
    return reg


def with_plugins(pm: Any | None) -> ParserRegistry:
    """The built-in families plus what each plugin's ``register_tool_parsers`` adds; a failing plugin is logged."""
    reg = builtin()
    if pm is None:
        return reg
    for impl in pm.hook.register_tool_parsers.get_hookimpls():
        try:
            impl.function(register=reg.register)
        except Exception:  # one broken plugin must not take tool calling down
            log.exception("plugin %s: register_tool_parsers failed", impl.plugin_name)
    return reg
