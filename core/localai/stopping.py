"""Helpers for backends that decode token by token: stop strings and incremental UTF-8."""

from __future__ import annotations

import codecs


class StopMatcher:
    """Streams text while holding back any tail that could still become a stop string.

    ``feed`` returns the text that is safe to emit and the stop string that matched (then
    generation must end; the stop string and anything after it are dropped).
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        if not self.stops:
            return text, None
        self.pending += text
        best: tuple[int, str] | None = None
        for stop in self.stops:
            i = self.pending.find(stop)
            if i != -1 and (best is None or i < best[0]):
                best = (i, stop)
        if best is not None:
            out = self.pending[: best[0]]
            self.pending = ""
            return out, best[1]
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:k]):
                    hold = max(hold, k)
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold:]
        return out, None

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class Utf8Stream:
    """Decodes token bytes as they come, never splitting a multi-byte character."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)
