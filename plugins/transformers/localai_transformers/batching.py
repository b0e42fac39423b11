"""Continuous batching for a causal LM on transformers: one decode thread per model owns a batch of up to
``parallel`` sequences and their KV cache, and runs one forward pass per step for all of them.

Why our own loop rather than ``transformers.generation.continuous_batching``: its sampler is one per batch
(temperature/top-k/top-p only), while each of our requests keeps its own seed, penalties, ``logit_bias``,
logprobs and constraint mask, applied to its own logits row here exactly as in a solo decode.

How: a new request is prefilled alone (a batch of one, so its prompt's logits never depend on its neighbours),
in chunks of ``prefill_chunk_size`` tokens at fixed offsets with one decode step of the running rows between two
chunks (a long prompt never stalls the streams already running for longer than one chunk; the chunks are the same
whoever runs beside it, so neither are its logits), its first token sampled, and its KV cache then joined to the
running batch's, right-aligned: shorter rows are
left-padded with masked cells, as ``generate`` pads a batch. Every row keeps its own positions (``position_ids``),
so padding changes nothing but the mask. Finished, stopped and cancelled rows leave between steps; the padding
columns no row needs any more are cut off. A model whose cache cannot be joined (OpenVINO keeps it inside the
engine; caches other than transformers' dynamic layers) decodes one request at a time through the same loop.
Worker-side only.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from localai.delivery import ChunkStream, Delivery
from localai.errors import QueueFull
from localai.stopping import StopMatcher
from localai.types import GenerateRequest, GenerationChunk, TokenLogprob, Usage

log = logging.getLogger("localai_transformers.batching")


@dataclass(eq=False)
class Sequence(Delivery):
    """One request's decode state; touched only by the decode thread once submitted."""

    request: GenerateRequest
    prompt: list[int]
    limit: int
    sampler: Any  # localai_transformers.sampling.Sampler
    enforcer: Any  # the constraint's per-sequence mask, or None
    cancelled: Callable[[], bool]
    text: Any  # localai_transformers.causal.TextStream
    first: dict[str, Any] = field(default_factory=dict)  # extra inputs of the prompt's forward (a vision model's pixels)
    usage: Usage = field(init=False)
    stops: StopMatcher = field(init=False)
    history: torch.Tensor | None = None  # prompt and generated ids, for the penalties
    prefilled: int = 0  # prompt tokens evaluated so far (chunked prefill)
    pre_cache: Any = None  # the prompt's own KV cache until the row joins the batch
    last: int | None = None  # sampled token still to feed
    length: int = 0  # tokens this row holds in the cache
    pending_tokens: int = 0
    pending_lp: list[TokenLogprob] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # a non-incremental request's text, delivered at its end
    counted: bool = True  # holds a row or a place in the queue (``Batcher.inflight``)

    def __post_init__(self) -> None:
        Delivery.__init__(self)  # the chunk queue / push hand-over, and ``closed``
        self.usage = Usage(prompt_tokens=len(self.prompt))
        self.stops = StopMatcher(self.request.stop)

    def gone(self) -> bool:
        return self.closed or self.cancelled()


class Batcher:
    """Owns the running batch of one model; ``submit`` is thread-safe."""

    def __init__(self, lm: Any, parallel: int, queue_size: int, prefill_chunk: int = 0) -> None:
        self.lm = lm  # the CausalLM: model, tokenizer, eos ids, forward argument names
        self.parallel = max(1, parallel)
        self.queue_size = max(0, queue_size)
        # 0: a prompt in one forward pass; a cache kept inside the engine (OpenVINO) is never fed in pieces
        self.prefill_chunk = max(0, prefill_chunk) if getattr(lm, "joinable", True) else 0
        # None until the first prompt's cache shows whether rows can join (one row at a time until then)
        self.joinable: bool | None = None if parallel > 1 and getattr(lm, "joinable", True) else False
        self.waiting: deque[Sequence] = deque()
        self.prefilling: deque[Sequence] = deque()  # admitted, prompt partly evaluated, not in the batch yet
        self.rows: list[Sequence] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # [rows, cache length]: 1 where a row's cell is real
        self.inflight = 0
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"transformers-batch-{lm.name}", daemon=True)
        self.thread.start()

    # -- client side ---------------------------------------------------------------------------

    def submit(self, seq: Sequence) -> ChunkStream:
        """Queue ``seq``; :class:`QueueFull` when ``parallel`` decode and ``queue_size`` already wait."""
        with self.cond:
            if self.inflight >= self.parallel + self.queue_size:
                raise QueueFull(self.lm.name)
            self.inflight += 1
            self.waiting.append(seq)
            self.cond.notify_all()
        return ChunkStream(seq, self.wake)

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def _release(self, seq: Sequence) -> None:
        """``seq`` no longer holds a row or a place in the queue (once, whichever way it ended)."""
        if seq.counted:
            seq.counted = False
            with self.cond:
                self.inflight -= 1

    def close(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=30)

    # -- decode thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopping and not self.waiting and not self.rows and not self.prefilling:
                    self.cond.wait()
                if self.stopping:
                    break
                self.prefilling.extend(self._take())
            try:
                with torch.inference_mode():
                    self._prefill_some()
                    self._step()
            except BaseException as exc:  # noqa: BLE001 - fail the running requests, keep serving later ones
                log.exception("model %r: decode step failed", self.lm.name)
                for seq in [*self.prefilling, *self.rows]:  # ``counted`` fails each once
                    if seq.counted:
                        self._release(seq)
                        seq.deliver(exc)
                self.rows, self.cache, self.mask = [], None, None
                self.prefilling.clear()
        for seq in [*self.rows, *self.prefilling, *self.waiting]:
            seq.deliver(RuntimeError("the model is shutting down"))

    def _take(self) -> list[Sequence]:
        """Waiting sequences that may start now (lock held): up to ``parallel`` rows, one when rows cannot join."""
        room = (self.parallel if self.joinable else 1) - len(self.rows) - len(self.prefilling)
        out: list[Sequence] = []
        for seq in list(self.waiting):
            if seq.gone():
                self.waiting.remove(seq)
                self._release(seq)  # the condition's lock is re-entrant
                seq.deliver(GenerationChunk(finish_reason="cancelled", usage=seq.usage))
            elif len(out) < room:
                self.waiting.remove(seq)
                out.append(seq)
        return out

    def _prefill_some(self) -> None:
        """Prompt chunks of the admitted sequences, oldest first: with rows running, about one chunk's worth of
        tokens between two steps (whole chunks, at least one); with none running, every prompt to its end."""
        budget = self.prefill_chunk
        spent = 0
        while self.prefilling:
            seq = self.prefilling[0]
            if seq.gone():
                self.prefilling.popleft()
                self._end(seq, "cancelled")
                continue
            size = self._chunk_size(seq)
            if self.rows and budget and spent and spent + size > budget:
                return
            spent += size
            if self._prefill(seq, size):
                self.prefilling.popleft()

    def _chunk_size(self, seq: Sequence) -> int:
        """The next chunk of ``seq``'s prompt: fixed offsets, so the same whatever else runs; a prompt with other
        inputs for its first pass (a vision model's pixels) is evaluated whole."""
        left = len(seq.prompt) - seq.prefilled
        return left if not self.prefill_chunk or seq.first else min(left, self.prefill_chunk)

    def _prefill(self, seq: Sequence, size: int) -> bool:
        """One chunk of the prompt's forward pass, alone; after the last, its first token and the row joins the
        batch (or ends already). True once the prompt is done."""
        lm = self.lm
        end = seq.prefilled + size
        ids = torch.tensor([seq.prompt[seq.prefilled:end]], device=lm.tensor_device)
        mask = torch.ones((1, end), dtype=ids.dtype, device=lm.tensor_device)
        out = lm.model(input_ids=ids, attention_mask=mask, use_cache=True, **{lm.cache_arg: seq.pre_cache},
                       **lm.keep_last, **seq.first)
        seq.first = {}
        seq.prefilled = seq.length = end
        if end < len(seq.prompt):
            seq.pre_cache = getattr(out, lm.cache_arg)
            return False
        seq.pre_cache = None
        seq.history = torch.tensor(seq.prompt, device=lm.tensor_device)
        if not self._advance(seq, out.logits[0, -1].float()):
            return True
        cache = getattr(out, lm.cache_arg)
        if self.joinable is None:
            try:
                _layers(cache)
                self.joinable = True
            except ValueError as exc:
                self.joinable = False
                log.warning("model %r: %s; it decodes one request at a time", lm.name, exc)
        if not self.rows:
            self.rows, self.cache, self.mask = [seq], cache, mask
            return True
        self.cache, self.mask = join(self.cache, self.mask, cache, mask)
        self.rows.append(seq)
        return True

    def _step(self) -> None:
        """One forward pass for every running row, each row's token chosen from its own logits."""
        for seq in [seq for seq in self.rows if seq.gone()]:
            self._end(seq, "cancelled")
        self._drop([seq for seq in self.rows if seq.last is None])
        if not self.rows:
            return
        lm = self.lm
        step = torch.tensor([[seq.last] for seq in self.rows], device=lm.tensor_device)
        assert self.mask is not None
        self.mask = torch.cat([self.mask, torch.ones_like(step)], dim=1)
        kwargs: dict[str, Any] = {}
        if len(self.rows) > 1 or self.mask.shape[1] != self.rows[0].length + 1:
            kwargs["position_ids"] = torch.tensor([[seq.length] for seq in self.rows], device=lm.tensor_device)
        out = lm.model(input_ids=step, attention_mask=self.mask, use_cache=True, **{lm.cache_arg: self.cache},
                       **lm.keep_last, **kwargs)
        self.cache = getattr(out, lm.cache_arg)
        logits = out.logits[:, -1].float()
        for i, seq in enumerate(self.rows):
            seq.length += 1
            if not self._advance(seq, logits[i]):
                seq.last = None
        self._drop([seq for seq in self.rows if seq.last is None])

    def _advance(self, seq: Sequence, raw: torch.Tensor) -> bool:
        """Choose the row's next token, stream what it completes; False once the sequence has ended."""
        from localai_transformers.sampling import token_logprob

        lm = self.lm
        if seq.gone():
            self._end(seq, "cancelled")
            return False
        assert seq.history is not None
        logits = seq.sampler.process(raw.clone(), seq.history)
        if seq.enforcer is not None:
            seq.enforcer.mask(logits)
        token = seq.sampler.choose(logits)
        seq.usage.completion_tokens += 1
        if seq.enforcer is not None:
            seq.enforcer.advance(token)
        if token in lm.eos_set:
            self._end(seq, "stop")
            return False
        seq.history = torch.cat([seq.history, torch.tensor([token], device=seq.history.device)])
        seq.pending_tokens += 1
        if seq.request.logprobs is not None:
            seq.pending_lp.append(token_logprob(raw, token, seq.request.logprobs, lm._piece))
        piece, matched = seq.stops.feed(seq.text.feed(token))
        if not seq.request.incremental:
            seq.held.append(piece)
        elif piece or matched:
            seq.deliver(GenerationChunk(text=piece, tokens=seq.pending_tokens, logprobs=seq.pending_lp or None))
            seq.pending_tokens, seq.pending_lp = 0, []
        if matched:
            self._end(seq, "stop", matched)
            return False
        if seq.enforcer is not None and seq.enforcer.done:
            self._end(seq, "stop")
            return False
        if seq.usage.completion_tokens >= seq.limit:
            self._end(seq, "length")
            return False
        seq.last = token
        return True

    def _end(self, seq: Sequence, reason: str, matched: str | None = None) -> None:
        tail = "" if matched or reason == "cancelled" else seq.stops.flush()
        seq.last = None
        self._release(seq)
        seq.deliver(GenerationChunk(text="".join(seq.held) + tail, tokens=seq.pending_tokens,
                                    logprobs=seq.pending_lp or None, finish_reason=reason, stop_sequence=matched,
                                    usage=seq.usage))

    def _drop(self, ended: list[Sequence]) -> None:
        """Take ended rows out of the batch, and the padding columns no remaining row needs."""
        if not ended:
            return
        keep = [i for i, seq in enumerate(self.rows) if seq not in ended]
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache, self.mask = None, None
            return
        self.cache, self.mask = select(self.cache, self.mask, keep)


# -- the batch's KV cache: transformers' DynamicCache, right-aligned rows -------------------------------

def _layers(cache: Any) -> list[Any]:
    """The cache's layers when every one is a dynamic (full or sliding-window) layer we can join; else ValueError."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers):
        raise ValueError(f"the model's cache ({type(cache).__name__}) cannot be batched")
    return list(layers)


def _kept(layer: Any, length: int) -> int:
    """Cells a layer holds for a sequence of ``length`` tokens (a sliding layer keeps its window less one)."""
    return min(length, layer.sliding_window - 1) if layer.is_sliding else length


def _pad_left(t: torch.Tensor, cells: int) -> torch.Tensor:
    if cells <= 0:
        return t
    return torch.cat([t.new_zeros(t.shape[0], t.shape[1], cells, t.shape[3]), t], dim=2)


def join(cache: Any, mask: torch.Tensor, new: Any, new_mask: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """``new``'s rows appended to ``cache``'s, both right-aligned to the longer length; the joined mask."""
    length = max(mask.shape[1], new_mask.shape[1])
    for layer, other in zip(_layers(cache), _layers(new)):
        if not other.is_initialized:
            continue
        want = _kept(layer, length)
        layer.keys = torch.cat([_pad_left(layer.keys, want - layer.keys.shape[2]),
                                _pad_left(other.keys, want - other.keys.shape[2])])
        layer.values = torch.cat([_pad_left(layer.values, want - layer.values.shape[2]),
                                  _pad_left(other.values, want - other.values.shape[2])])
        if layer.is_sliding:
            layer.cumulative_length = length
    rows = [torch.nn.functional.pad(m, (length - m.shape[1], 0)) for m in (mask, new_mask)]
    return cache, torch.cat(rows)


def select(cache: Any, mask: torch.Tensor, keep: list[int]) -> tuple[Any, torch.Tensor]:
    """Only rows ``keep`` of the batch, less the leading columns that are padding in all of them."""
    index = torch.tensor(keep, device=mask.device)
    mask = mask.index_select(0, index)
    used = mask.any(dim=0).nonzero()
    cut = int(used[0]) if used.numel() else 0
    length = mask.shape[1] - cut
    for layer in _layers(cache):  # only a joinable batch ever has rows to drop and others to keep
        if not layer.is_initialized:
            continue
        want = _kept(layer, length)
        layer.keys = layer.keys.index_select(0, index)[:, :, layer.keys.shape[2] - want:]
        layer.values = layer.values.index_select(0, index)[:, :, layer.values.shape[2] - want:]
        if layer.is_sliding:
            layer.cumulative_length = length
    return cache, mask[:, cut:]

