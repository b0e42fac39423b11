"""LocalAI's ``prompt_cache_path``: a prompt's KV state kept in a file, so it survives a restart.

The file is llama.cpp's sequence state file (``llama_state_seq_save_file``: magic, version, the tokens, then the
sequence's KV), the format llama-server's ``/slots?action=save`` writes, so either can read the other's (for the
same model, KV cache types and number of slots). A request whose prompt shares a longer prefix with the file's
tokens than with any slot or the RAM cache is started from it. The file is written after a prompt is evaluated
(``prompt_cache_all``: when the answer ends, generated tokens included) unless it holds those tokens already;
``prompt_cache_ro`` only reads it. The version in the header is this llama.cpp's: a file of another version (or
model, cache type, number of slots) is reported, not used, and replaced by the next prompt's.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
import time
from pathlib import Path
from typing import Any

import llama_cpp

log = logging.getLogger("localai_llama_cpp.prompt_file")

HEADER = struct.Struct("<III")  # magic, version, token count


def read_tokens(path: Path) -> list[int]:
    """The tokens a state file holds ([] when it is missing or not a sequence state file of this llama.cpp)."""
    try:
        with path.open("rb") as f:
            head = f.read(HEADER.size)
            if len(head) < HEADER.size:
                return []
            magic, version, n = HEADER.unpack(head)
            if magic != llama_cpp.LLAMA_STATE_SEQ_MAGIC or version != llama_cpp.LLAMA_STATE_SEQ_VERSION:
                log.warning("prompt cache %s is not a llama.cpp sequence state file of version %d: not used (the next "
                            "prompt replaces it unless prompt_cache_ro)", path, llama_cpp.LLAMA_STATE_SEQ_VERSION)
                return []
            body = f.read(4 * n)
    except OSError:
        return []
    if len(body) < 4 * n:
        return []
    return list(struct.unpack(f"<{n}i", body))


class PromptFile:
    """One model's prompt cache file; used by the scheduler thread only."""

    def __init__(self, path: str, save_all: bool, read_only: bool) -> None:
        self.path = Path(path)
        self.save_all = save_all
        self.read_only = read_only
        self.tokens = read_tokens(self.path)
        if self.tokens:
            log.info("prompt cache %s: %d tokens", self.path, len(self.tokens))

    def load(self, ctx: Any, seq: int, capacity: int) -> list[int] | None:
        """Load the file into (emptied) sequence ``seq``; its tokens, or None when it did not take."""
        out = (llama_cpp.llama_token * capacity)()
        n = ctypes.c_size_t(0)
        read = llama_cpp.llama_state_seq_load_file(ctx, str(self.path).encode(), seq, out, capacity, ctypes.byref(n))
        if read == 0:
            log.warning("prompt cache %s could not be loaded (written for another model, cache type or number of "
                        "slots?): not used, the prompt is evaluated", self.path)
            self.tokens = []
            return None
        return list(out[: n.value])

    def save(self, ctx: Any, seq: int, tokens: list[int]) -> None:
        """Write sequence ``seq`` (holding ``tokens``) to the file unless it holds them already.

        llama.cpp writes it (its own format, whatever its version), to a temporary name renamed over the file, so a
        reader never sees half a file. Synchronous: the other slots wait for it (18 MiB of f16 state took 9 ms to the
        page cache; the log line reports each write).
        """
        if self.read_only or not tokens or tokens == self.tokens or min(tokens) < 0:  # image embeddings: no token ids
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        started = time.perf_counter()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            array = (llama_cpp.llama_token * len(tokens))(*tokens)
            size = llama_cpp.llama_state_seq_save_file(ctx, str(tmp).encode(), seq, array, len(tokens))
            if size == 0:
                raise OSError("llama.cpp wrote nothing")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("prompt cache %s could not be written: %s", self.path, exc)
            return
        self.tokens = list(tokens)
        log.info("prompt cache %s: saved %d tokens (%.1f MiB in %.0f ms)", self.path, len(tokens), size / 2**20,
                 (time.perf_counter() - started) * 1000)
