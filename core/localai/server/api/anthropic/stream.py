"""Engine events -> Anthropic's streaming events, each with an ``event:`` line equal to its ``type``.

Order: message_start, then per block content_block_start / content_block_delta... / content_block_stop
(one ping after the first block opens, as Anthropic does), then message_delta and message_stop.
A failure mid-stream becomes an ``event: error`` (the 200 is already sent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from localai.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from localai.server.api import sse
from localai.server.api.anthropic.render import message_id, stop_reason, tool_use_id, usage
from localai.server.api.errors import error_body, for_protocol, to_api_error
from localai.types import Usage


def emit(data: dict[str, Any]) -> bytes:
    return sse.event(data, name=data["type"])


class BlockWriter:
    """Tracks the open content block so each kind of output gets its own, correctly indexed block."""

    def __init__(self) -> None:
        self.count = 0
        self.open: str | None = None  # "text" | "thinking" | "tool_use"
        self.tool_blocks: dict[int, int] = {}  # engine tool index -> block index
        self.streamed_args: dict[int, bool] = {}
        self.pinged = False

    @property
    def index(self) -> int:
        return self.count - 1

    def start(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        out = self.stop()
        self.count += 1
        self.open = block["type"]
        out.append({"type": "content_block_start", "index": self.index, "content_block": block})
        if not self.pinged:
            self.pinged = True
            out.append({"type": "ping"})
        return out

    def stop(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def delta(self, index: int, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": index, "delta": delta}

    def feed(self, ev: Event) -> list[dict[str, Any]]:
        if isinstance(ev, TextDelta):
            if not ev.text:
                return []
            out = [] if self.open == "text" else self.start({"type": "text", "text": ""})
            return [*out, self.delta(self.index, {"type": "text_delta", "text": ev.text})]
        if isinstance(ev, ReasoningDelta):
            if not ev.text:
                return []
            out = [] if self.open == "thinking" else self.start({"type": "thinking", "thinking": "", "signature": ""})
            return [*out, self.delta(self.index, {"type": "thinking_delta", "thinking": ev.text})]
        if isinstance(ev, ToolCallStart):
            out = self.start({"type": "tool_use", "id": tool_use_id(ev.id), "name": ev.name, "input": {}})
            self.tool_blocks[ev.index] = self.index
            return out
        if isinstance(ev, ToolCallDelta):
            if not ev.arguments or ev.index not in self.tool_blocks:
                return []
            self.streamed_args[ev.index] = True
            return [self.delta(self.tool_blocks[ev.index], {"type": "input_json_delta", "partial_json": ev.arguments})]
        if isinstance(ev, ToolCallEnd):
            block = self.tool_blocks.get(ev.index)
            if block is None:
                return []
            out = []
            if not self.streamed_args.get(ev.index):  # the engine gave the arguments only whole
                out.append(self.delta(block, {"type": "input_json_delta", "partial_json": ev.arguments}))
            if self.open == "tool_use" and block == self.index:
                out.extend(self.stop())
            return out
        return []


async def events(stream: AsyncIterator[Event], model: str, stop_sequences: list[str], input_tokens: int) -> AsyncIterator[bytes]:
    blocks = BlockWriter()
    yield emit({"type": "message_start", "message": {
        "id": message_id(), "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage(Usage(prompt_tokens=input_tokens))}})
    try:
        async for ev in stream:
            if isinstance(ev, Finish):
                for data in blocks.stop():
                    yield emit(data)
                if not blocks.pinged:
                    yield emit({"type": "ping"})
                reason, sequence = stop_reason(ev, stop_sequences)
                yield emit({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                            "usage": usage(ev.usage)})
                yield emit({"type": "message_stop"})
                return
            for data in blocks.feed(ev):
                yield emit(data)
        raise RuntimeError("generation ended without a finish event")
    except Exception as exc:  # noqa: BLE001 - reported in-stream, the status line is already sent
        yield emit(error_body("anthropic", for_protocol("anthropic", to_api_error(exc))))
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()  # stops generation in the worker if the client went away
