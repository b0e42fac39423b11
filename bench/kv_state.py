"""A llama.cpp sequence state file (``llama_state_seq_save_file``; our ``prompt_cache_path``, llama-server's slot
save) read and tiled to a longer context, so decode speed at 32k can be measured without a 32k prefill.

Decoding over ``depth`` cells costs the same whatever the cells hold, but filling them through the
llama-cpp-turboquant fork's scalar CPU flash attention takes hours at 32k on 2 cores. So a real prefill of a few
thousand tokens is saved, and its cells are repeated at positions 0..depth-1 (keys keep the rotation of their first
position, which changes what attention computes, not what it costs). Gemma 3's sliding-window cache (the second
cache of an interleaved-SWA model) keeps its window cells, moved to the end. The layout read here is the fork's and
llama.cpp's as of 2025-2026 (one stream, no M-RoPE, keys and values not transposed: flash attention on) and is
checked: a file that does not parse to its last byte is refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Cache:
    positions: list[int]
    seq: int
    layers: list[tuple[int, int, bytes]]  # (ggml type, row bytes, cell_count rows): keys of every layer, then values


def _u32(buf: bytes, off: int) -> tuple[int, int]:
    return struct.unpack_from("<I", buf, off)[0], off + 4


def _cache(buf: bytes, off: int) -> tuple[Cache, int]:
    n_stream, off = _u32(buf, off)
    if n_stream != 1:
        raise ValueError(f"{n_stream} KV streams: save the state from a one-slot context")
    cells, off = _u32(buf, off)
    positions, seq = [], 0
    for _ in range(cells):
        pos, n_seq, seq = struct.unpack_from("<iIi", buf, off)
        if n_seq != 1:
            raise ValueError("a cell of several sequences: not a single sequence's state")
        positions.append(pos)
        off += 12
    v_trans, off = _u32(buf, off)
    n_layer, off = _u32(buf, off)
    if v_trans:
        raise ValueError("transposed values (flash attention off): not handled")
    layers = []
    for _ in range(2 * n_layer):
        kind, row = struct.unpack_from("<iQ", buf, off)
        off += 12
        layers.append((kind, row, buf[off: off + row * cells]))
        off += row * cells
    return Cache(positions, seq, layers), off


def read_state(path: Path) -> tuple[int, int, list[int], list[Cache]]:
    """(magic, version, tokens, caches) of a sequence state file; a model with sliding-window layers has two caches."""
    buf = path.read_bytes()
    magic, version, n = struct.unpack_from("<III", buf)
    tokens = list(struct.unpack_from(f"<{n}i", buf, 12))
    off, caches = 12 + 4 * n, []
    while off < len(buf):
        cache, off = _cache(buf, off)
        caches.append(cache)
    if off != len(buf) or not caches:
        raise ValueError(f"{path}: the state does not parse to its end ({off} of {len(buf)} bytes)")
    return magic, version, tokens, caches


def _write_cache(out: list[bytes], cache: Cache) -> None:
    out.append(struct.pack("<II", 1, len(cache.positions)))
    out.append(b"".join(struct.pack("<iIi", p, 1, cache.seq) for p in cache.positions))
    out.append(struct.pack("<II", 0, len(cache.layers) // 2))
    for kind, row, data in cache.layers:
        out.append(struct.pack("<iQ", kind, row) + data)


def tile_state(source: Path, target: Path, depth: int) -> list[int]:
    """Write ``target``: ``source``'s prompt (cells at positions 0..n-1) repeated to ``depth`` cells (a multiple of n);
    returns its tokens."""
    magic, version, tokens, caches = read_state(source)
    n = len(tokens)
    full = caches[0]
    if full.positions != list(range(n)) or depth % n:
        raise ValueError(f"the source must hold its {n} prompt tokens at positions 0..{n - 1} and {depth} be a multiple of {n}")
    times = depth // n
    tiled = [Cache(list(range(depth)), full.seq, [(k, row, data * times) for k, row, data in full.layers])]
    for window in caches[1:]:  # sliding-window caches: the last cells, moved to the end of the longer context
        tiled.append(Cache([p + depth - n for p in window.positions], window.seq, window.layers))
    out = [struct.pack("<III", magic, version, depth), struct.pack(f"<{depth}i", *(tokens * times))]
    for cache in tiled:
        _write_cache(out, cache)
    target.write_bytes(b"".join(out))
    return tokens * times
