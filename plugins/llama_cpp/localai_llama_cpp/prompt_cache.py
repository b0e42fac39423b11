"""A host-RAM prompt cache (``cache_ram``): KV states of evicted slot prompts, restored into a slot on a prefix hit.

A slot keeps its own KV between requests; this cache keeps what a slot is about to overwrite, so a client
that comes back after other prompts took every slot still skips its shared prefix. Bounded in bytes, LRU.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from typing import Any

import llama_cpp

MIN_TOKENS = 16  # states of shorter prompts are not worth the copy


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PromptCache:
    """``limit_mib``: -1 unlimited, 0 off, else the MiB cap on stored states."""

    def __init__(self, limit_mib: int) -> None:
        self.limit = None if limit_mib < 0 else limit_mib * 1024 * 1024
        self.entries: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self.size = 0

    @property
    def enabled(self) -> bool:
        return self.limit is None or self.limit > 0

    def save(self, ctx: Any, seq: int, tokens: list[int]) -> None:
        """Copy sequence ``seq``'s KV (holding exactly ``tokens``) into the cache, evicting the oldest entries."""
        if not self.enabled or len(tokens) < MIN_TOKENS:
            return
        key = tuple(tokens)
        if key in self.entries:
            self.entries.move_to_end(key)
            return
        n = llama_cpp.llama_state_seq_get_size(ctx, seq)
        if n <= 0 or (self.limit is not None and n > self.limit):
            return
        buf = (ctypes.c_uint8 * n)()
        got = llama_cpp.llama_state_seq_get_data(ctx, buf, n, seq)
        if got <= 0:
            return
        # Entries whose tokens are a prefix of this one are now redundant.
        for old in [k for k in self.entries if len(k) <= len(key) and key[: len(k)] == k]:
            self.size -= len(self.entries.pop(old))
        self.entries[key] = bytes(buf)[:got]
        self.size += got
        while self.limit is not None and self.size > self.limit and self.entries:
            _, data = self.entries.popitem(last=False)
            self.size -= len(data)

    def best(self, prompt: list[int]) -> tuple[list[int], int]:
        """The cached token list sharing the longest prefix with ``prompt``, and that prefix's length."""
        best: tuple[list[int], int] = ([], 0)
        for key in self.entries:
            n = common_prefix(list(key), prompt)
            if n > best[1]:
                best = (list(key), n)
        return best

    def restore(self, ctx: Any, seq: int, tokens: list[int]) -> bool:
        """Load the state stored for ``tokens`` into (emptied) sequence ``seq``; False when it did not take."""
        data = self.entries.get(tuple(tokens))
        if data is None:
            return False
        self.entries.move_to_end(tuple(tokens))
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        return llama_cpp.llama_state_seq_set_data(ctx, buf, len(data), seq) > 0
