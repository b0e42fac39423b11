"""The output projection (``lm_head``) of a batch on CPU: the one matmul that reads the whole vocabulary's weights
every step (Gemma 3: 262,144 x 640, 671 MB in float32).

torch's CPU matmul (MKL) picks a slow kernel for ``x @ W.T`` at 4-12 rows: on a 2-core AVX-512 Xeon, 8 rows took
115 ms against 31 ms for one, while ``(W @ x.T).T`` took 70 ms at any row count from 2 to 16. The same dot
products, in the other operand order. Which order is faster depends on the BLAS and the CPU, so it is measured
once at load for the batch size the model serves; a single row (every prompt's last position, a lone decode) keeps
the model's own call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("localai_transformers")

MIN_VOCAB = 32768  # below this the head is a small share of a step: nothing worth measuring


def _best(fn: Any, runs: int = 2) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def tune_head(model: Any, rows: int) -> str | None:
    """Where the flipped order is clearly faster (at 2, 4, 8, ... up to ``rows``), use it for those batch sizes."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Linear) or head.bias is not None or rows < 2:
        return None
    weight = head.weight
    if weight.device.type != "cpu" or weight.shape[0] < MIN_VOCAB or weight.dtype != torch.float32:
        return None
    sizes = sorted({min(2 ** k, rows) for k in range(1, rows.bit_length() + 1)})  # 2, 4, 8, ... then rows
    faster, report = set(), []
    with torch.inference_mode():
        for n in sizes:
            x = torch.randn(n, weight.shape[1], dtype=weight.dtype)
            plain = _best(lambda: torch.nn.functional.linear(x, weight))
            flipped = _best(lambda: (weight @ x.t()).t())
            if flipped < 0.85 * plain:
                faster.add(n)
                report.append(f"{n} rows {flipped * 1e3:.0f} vs {plain * 1e3:.0f} ms")
    if not faster:
        return None
    own = head.forward

    def flip(m: int) -> bool:
        return m >= 2 and next((s for s in sizes if s >= m), sizes[-1]) in faster

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(-1, hidden.shape[-1])
        if not flip(flat.shape[0]):
            return own(hidden)
        return (weight @ flat.t()).t().reshape(*hidden.shape[:-1], weight.shape[0])

    head.forward = forward
    return "output projection as (W @ x.T).T for " + ", ".join(report)
