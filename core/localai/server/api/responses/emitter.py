"""Engine events -> Open Responses stream events, keeping the response object up to date.

One :class:`Emitter` per response. Each method returns the stream events to send, already
numbered; item payloads are deep copies, so later changes to the live response never alter an
event that was already produced.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from localai.errors import APIError
from localai.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from localai.server.api.responses import resource
from localai.server.api.responses.items import new_id
from localai.types import TokenLogprob

StreamEvent = dict[str, Any]
TERMINAL = {"completed", "incomplete", "failed", "cancelled"}


def logprobs(items: list[TokenLogprob] | None) -> list[dict[str, Any]]:
    def raw(token: str, b: list[int] | None) -> list[int]:
        return b if b is not None else list(token.encode("utf-8", errors="replace"))

    return [{"token": lp.token, "logprob": lp.logprob, "bytes": raw(lp.token, lp.bytes),
             "top_logprobs": [{"token": t, "logprob": v, "bytes": raw(t, None)} for t, v in lp.top]} for lp in items or []]


class Emitter:
    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.seq = 0
        self._open: tuple[str, int] | None = None  # ("message" | "reasoning", output index)
        self._calls: dict[int, int] = {}  # engine tool-call index -> output index

    @classmethod
    def resume(cls, response: dict[str, Any], next_seq: int) -> Emitter:
        """An emitter for a response saved mid-generation (its items still ``in_progress``), to close it."""
        em = cls(response)
        em.seq = next_seq
        for index, item in enumerate(response["output"]):
            if item.get("status") != "in_progress":
                continue
            if item["type"] == "function_call":
                em._calls[index] = index
            elif item["type"] in ("message", "reasoning") and item.get("content"):
                em._open = (item["type"], index)
        return em

    # -- helpers -------------------------------------------------------------------------------

    def _event(self, type_: str, **fields: Any) -> StreamEvent:
        ev = {"type": type_, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    def lifecycle(self, type_: str) -> StreamEvent:
        return self._event(type_, response=copy.deepcopy(self.response))

    def set_status(self, status: str) -> StreamEvent:
        """Move to ``queued`` / ``in_progress`` and announce it."""
        self.response["status"] = status
        return self.lifecycle("response.queued" if status == "queued" else "response.in_progress")

    def _item(self, index: int) -> dict[str, Any]:
        return self.response["output"][index]

    def _add(self, item: dict[str, Any]) -> tuple[int, StreamEvent]:
        self.response["output"].append(item)
        index = len(self.response["output"]) - 1
        return index, self._event("response.output_item.added", output_index=index, item=copy.deepcopy(item))

    def _open_part(self, kind: str) -> list[StreamEvent]:
        if self._open and self._open[0] == kind:
            return []
        events = self._close_open("completed")
        item: dict[str, Any]
        if kind == "message":
            item = {"id": new_id("msg"), "type": "message", "status": "in_progress", "role": "assistant", "content": []}
            part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        else:
            item = {"id": new_id("rs"), "type": "reasoning", "status": "in_progress", "summary": [], "content": []}
            part = {"type": "reasoning_text", "text": ""}
        index, added = self._add(item)
        events.append(added)
        events.append(self._event("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                                  part=copy.deepcopy(part)))
        item["content"].append(part)
        self._open = (kind, index)
        return events

    def _close_open(self, status: str) -> list[StreamEvent]:
        if self._open is None:
            return []
        kind, index = self._open
        self._open = None
        item = self._item(index)
        part = item["content"][0]
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if kind == "message":
            done = self._event("response.output_text.done", **common, text=part["text"], logprobs=part["logprobs"])
        else:
            done = self._event("response.reasoning.done", **common, text=part["text"])
        part_done = self._event("response.content_part.done", **common, part=copy.deepcopy(part))
        item["status"] = status
        return [done, part_done, self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item))]

    def _close_calls(self, status: str) -> list[StreamEvent]:
        events = []
        for index in self._calls.values():
            item = self._item(index)
            item["status"] = status
            events.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))
        self._calls.clear()
        return events

    # -- engine events -------------------------------------------------------------------------

    def feed(self, ev: Event) -> list[StreamEvent]:
        if isinstance(ev, TextDelta):
            events = self._open_part("message")
            index = self._open[1]  # type: ignore[index]
            item = self._item(index)
            part = item["content"][0]
            part["text"] += ev.text
            lps = logprobs(ev.logprobs)
            part["logprobs"].extend(lps)
            events.append(self._event("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0,
                                      delta=ev.text, logprobs=lps))
            return events
        if isinstance(ev, ReasoningDelta):
            events = self._open_part("reasoning")
            index = self._open[1]  # type: ignore[index]
            item = self._item(index)
            item["content"][0]["text"] += ev.text
            events.append(self._event("response.reasoning.delta", item_id=item["id"], output_index=index, content_index=0,
                                      delta=ev.text))
            return events
        if isinstance(ev, ToolCallStart):
            events = self._close_open("completed")
            item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress", "call_id": ev.id, "name": ev.name,
                    "arguments": ""}
            index, added = self._add(item)
            self._calls[ev.index] = index
            return [*events, added]
        if isinstance(ev, ToolCallDelta):
            index = self._calls[ev.index]
            item = self._item(index)
            item["arguments"] += ev.arguments
            return [self._event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                                delta=ev.arguments)]
        if isinstance(ev, ToolCallEnd):
            index = self._calls.pop(ev.index)
            item = self._item(index)
            item["arguments"] = ev.arguments
            item["status"] = "completed"
            return [self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                name=item["name"], arguments=ev.arguments),
                    self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item))]
        if isinstance(ev, Finish):
            return self.finish(ev)
        return []

    # -- endings -------------------------------------------------------------------------------

    def _end(self, status: str, item_status: str) -> list[StreamEvent]:
        events = [*self._close_open(item_status), *self._close_calls("incomplete")]
        self.response["status"] = status
        self.response["completed_at"] = int(time.time()) if status == "completed" else None
        return events

    def finish(self, ev: Finish) -> list[StreamEvent]:
        if ev.reason == "cancelled":
            return self.cancel()
        if ev.reason == "error":
            return self.fail(APIError("server", "the backend reported an error while generating", code="backend_error"))
        incomplete = ev.reason == "length"
        events = self._end("incomplete" if incomplete else "completed", "incomplete" if incomplete else "completed")
        self.response["usage"] = resource.usage(ev.usage)
        if incomplete:
            self.response["incomplete_details"] = {"reason": "max_output_tokens"}
            return [*events, self.lifecycle("response.incomplete")]
        return [*events, self.lifecycle("response.completed")]

    def fail(self, err: APIError) -> list[StreamEvent]:
        events = self._end("failed", "incomplete")
        self.response["error"] = resource.error(err)
        return [*events, self.lifecycle("response.failed")]

    def cancel(self) -> list[StreamEvent]:
        """Cancelled responses end with ``response.failed`` carrying status ``cancelled`` (the spec has no cancel event)."""
        events = self._end("cancelled", "incomplete")
        return [*events, self.lifecycle("response.failed")]

    @property
    def finished(self) -> bool:
        return self.response["status"] in TERMINAL
