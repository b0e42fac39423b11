"""Continuous batching on one llama context: N slots (sequences), one ``llama_decode`` per step.

One scheduler thread owns the context. Each step it admits waiting requests into free slots (picking the
slot whose cached KV shares the longest prefix with the prompt), feeds every generating slot its last token
and the prompting slots a chunk of their prompt, all in one ``llama_batch``, then samples each slot's next
token with its own C sampler chain. Finished and cancelled requests free their slot between steps; the slot
keeps its KV so a later prompt with the same prefix skips it. ``generate`` threads only enqueue a job and
read its chunks from a per-job queue.

Context: ``context_size`` is the whole context; each of the ``parallel`` slots gets ``context_size /
parallel`` tokens in its own KV stream (like llama.cpp's server with ``--parallel``, non-unified KV).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
from localai.delivery import ChunkStream, Delivery
from localai.errors import QueueFull
from localai.stopping import StopMatcher, Utf8Stream
from localai.types import GenerateRequest, GenerationChunk, TokenLogprob, Usage

from localai_llama_cpp.options import default_cache_ram
from localai_llama_cpp.prompt_cache import PromptCache, common_prefix
from localai_llama_cpp.prompt_file import PromptFile
from localai_llama_cpp.sampling import free_sampler, token_logprob
from localai_llama_cpp.vision import prompt_usage

log = logging.getLogger("localai_llama_cpp.scheduler")

PROMPT_CHUNK = 128  # prompt tokens per decode call: a long prompt holds running streams up for one chunk at a time
# With batch_invariant on, a prompt chunk stays below ggml-cpu's flash-attention query tile (GGML_FA_TILE_Q, 64):
# 64 or more queries of one sequence take a tiled kernel that rounds a row by its tile's other rows, so the same
# prompt finished from a cached start (a shorter last chunk) would get other logits.
INVARIANT_CHUNK = 63
# The split-KV kernel needs 512+ KV cells, and llama.cpp pads a stream's cells to 256 (n_kv = 512 once more than 256
# are used): below this many cached tokens no slot can reach it, and decodes need no filler rows (a 64-cell margin).
FILLER_FROM = 192
DEFAULT_QUEUE = 64  # waiting requests per model beyond the busy slots


@dataclass(eq=False)
class Job(Delivery):
    """One request's decoding state; touched only by the scheduler thread once submitted."""

    request: GenerateRequest
    prompt: list[int]
    sampler: Any  # the C sampler chain, or None when ``greedy`` picks
    cancelled: Callable[[], bool]
    max_tokens: int
    greedy: Any = None  # localai_llama_cpp.sampling.Greedy: argmax in numpy instead of the C chain
    matcher: Any = None  # localai.constraints.Matcher: masks this sequence's logits, consumes its tokens
    stops: StopMatcher = field(init=False)
    utf8: Utf8Stream = field(default_factory=Utf8Stream)
    usage: Usage = field(default_factory=Usage)
    generated: int = 0
    pending_tokens: int = 0
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # a non-incremental request's text, delivered at its end
    media: Any = None  # localai_llama_cpp.vision.Media: the prompt's images (negative keys in ``prompt``)

    def __post_init__(self) -> None:
        Delivery.__init__(self)  # the chunk queue / push hand-over, and ``closed``
        self.stops = StopMatcher(self.request.stop)
        self.usage.prompt_tokens = prompt_usage(self.prompt, self.media)

    def gone(self) -> bool:
        return self.closed or self.cancelled()


@dataclass
class Slot:
    seq: int
    cache: list[int] = field(default_factory=list)  # tokens whose KV sequence ``seq`` holds, by position
    job: Job | None = None
    todo: list[int] = field(default_factory=list)  # prompt tokens still to decode
    last: int | None = None  # sampled token still to decode
    used: float = 0.0


class Scheduler:
    """Owns a llama context with ``n_slots`` sequences; thread-safe ``submit`` from any thread."""

    def __init__(self, model: Any, context: Any, n_slots: int, options: dict[str, Any]) -> None:
        self.model = model  # the LlamaCppModel: tokenizer, vocab, config name
        self.context = context  # the LlamaContext wrapper: keeps the C context alive
        ctx = self.ctx = context.ctx
        self.mem = llama_cpp.llama_get_memory(ctx)
        self.n_ctx_total = int(llama_cpp.llama_n_ctx(ctx))
        self.n_ctx_slot = int(llama_cpp.llama_n_ctx_seq(ctx))
        self.n_batch = int(llama_cpp.llama_n_batch(ctx))
        self.n_vocab = model.llm.n_vocab()
        self.slots = [Slot(seq=i) for i in range(n_slots)]
        self.queue_size = max(0, int(options.get("queue_size", DEFAULT_QUEUE)))  # option, env LLAMACPP_QUEUE_SIZE
        self.context_shift = bool(options.get("context_shift", False))
        self.cache_reuse = int(options.get("n_cache_reuse") or 0)
        self.similarity = float(options.get("slot_prompt_similarity", 0.1) or 0.0)
        ram = options.get("cache_ram")
        self.ram = PromptCache(default_cache_ram() if ram is None else int(ram))
        config = model.config
        self.file = PromptFile(config.prompt_cache_path, config.prompt_cache_all, config.prompt_cache_ro) \
            if config.prompt_cache_path else None
        self.can_shift = bool(llama_cpp.llama_memory_can_shift(self.mem))
        # A window-sized SWA cache (swa_full off) drops cells older than the window: a prefix is reusable only
        # while the window before its end is still held (llama-server's check).
        n_swa = int(llama_cpp.llama_model_n_swa(model.llm._model.model))
        self.swa_window = 0 if options.get("swa_full", True) or n_swa <= 0 else n_swa
        # A state restored from the RAM cache keeps only the window's cells for SWA layers even with swa_full (a
        # 545-token Gemma 3 prompt came back from position 35): the same check then applies to it.
        self.n_swa = max(0, n_swa)
        self.invariant = bool(options.get("batch_invariant", True))
        self.prompt_chunk = INVARIANT_CHUNK if self.invariant else PROMPT_CHUNK
        self.waiting: deque[Job] = deque()
        self.inflight = 0
        self.cond = threading.Condition()
        self.stopping = False
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._views: dict[int, Any] = {}  # logits row address -> numpy view (see _logits)
        self.thread = threading.Thread(target=self._run, name="llama-scheduler", daemon=True)
        self.thread.start()

    # -- client side -------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue ``job``; raises ``QueueFull`` when every slot is busy and the wait queue is full."""
        with self.cond:
            if self.inflight >= len(self.slots) + self.queue_size:
                raise QueueFull(self.model.config.name)
            self.inflight += 1
            self.waiting.append(job)
            self.cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is running or waiting (every slot's job released); False on timeout."""
        with self.cond:
            return self.cond.wait_for(lambda: self.inflight == 0, timeout)

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(timeout=30)
        if not self.thread.is_alive():
            llama_cpp.llama_batch_free(self.batch)

    # -- scheduler thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopping and not self.waiting and not any(s.job for s in self.slots):
                    self.cond.wait()
                if self.stopping:
                    break
                admitted = self._take_admissions()
            try:
                for slot, job in admitted:
                    self._assign(slot, job)
                self._step()
            except BaseException as exc:  # noqa: BLE001 - fail the running requests, keep serving others
                log.exception("decode step failed")
                for slot in self.slots:
                    if slot.job is not None:
                        self._fail(slot, exc)
        for slot in self.slots:
            if slot.job is not None:
                self._fail(slot, RuntimeError("the model is shutting down"))

    def _take_admissions(self) -> list[tuple[Slot, Job]]:
        """Pair waiting jobs with free slots (called with the lock held). Cancelled waiters are dropped."""
        out: list[tuple[Slot, Job]] = []
        free = [s for s in self.slots if s.job is None]
        while self.waiting and free:
            job = self.waiting.popleft()
            if job.gone():
                self._finish_unstarted(job)
                continue
            slot = self._pick_slot(free, job.prompt)
            free.remove(slot)
            slot.job = job  # reserve; the KV work happens outside the lock
            out.append((slot, job))
        for job in [j for j in self.waiting if j.gone()]:
            self.waiting.remove(job)
            self._finish_unstarted(job)
        return out

    def _pick_slot(self, free: list[Slot], prompt: list[int]) -> Slot:
        """The free slot with the longest shared prefix if similar enough, else the least recently used."""
        if self.similarity > 0:
            best, best_n = None, 0
            for s in free:
                n = common_prefix(s.cache, prompt)
                if n > best_n:
                    best, best_n = s, n
            if best is not None and best_n / max(1, len(prompt)) >= self.similarity:
                return best
        return min(free, key=lambda s: s.used)

    def _finish_unstarted(self, job: Job) -> None:
        job.deliver(GenerationChunk(finish_reason="cancelled", usage=job.usage))
        free_sampler(job.sampler)
        self.inflight -= 1
        self.cond.notify_all()

    def _assign(self, slot: Slot, job: Job) -> None:
        """Reuse what the slot's KV (or the RAM cache, or the prompt cache file) shares with the prompt; queue the rest
        for decoding."""
        prompt = job.prompt
        n_past = common_prefix(slot.cache, prompt)
        restored = False
        if self.ram.enabled:
            tokens, n = self.ram.best(prompt)
            if n > n_past:
                restored = self._replace_kv(slot, lambda: tokens if self.ram.restore(self.ctx, slot.seq, tokens) else None)
                n_past = n if restored else 0
            elif len(slot.cache) - n_past >= len(slot.cache) // 2:
                self.ram.save(self.ctx, slot.seq, slot.cache)  # most of this slot's KV is about to go
        file = self.file
        if file is not None and common_prefix(file.tokens, prompt) > n_past:
            restored = self._replace_kv(slot, lambda: file.load(self.ctx, slot.seq, self.n_ctx_slot))
            n_past = common_prefix(slot.cache, prompt)
        if self.cache_reuse > 0 and self.can_shift and n_past < len(prompt) and job.media is None \
                and min(slot.cache, default=0) >= 0:  # image KV is never shifted into place
            n_past = self._reuse_chunks(slot, prompt, n_past)
        # Decode at least two tokens: the logits then come from the same kernels whatever was cached.
        n_past = max(0, min(n_past, len(prompt) - 2))
        while 0 < n_past < len(prompt) and prompt[n_past] < 0 and prompt[n_past - 1] == prompt[n_past]:
            n_past -= 1  # never start inside an image: it is evaluated whole
        window = self.swa_window or (self.n_swa if restored else 0)
        if window and n_past > 0 and \
                llama_cpp.llama_memory_seq_pos_min(self.mem, slot.seq) > max(0, n_past - window):
            n_past = 0  # the window's cells before n_past are gone: evaluate the prompt again
        if not llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, n_past, -1):
            llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
            n_past = 0
        slot.cache = slot.cache[:n_past]
        slot.todo = prompt[n_past:]
        slot.last = None
        slot.used = time.monotonic()
        job.usage.cached_tokens = n_past

    def _replace_kv(self, slot: Slot, load: Callable[[], list[int] | None]) -> bool:
        """Swap the slot's KV for a stored state (``load`` fills the emptied sequence and returns its tokens, or None):
        the KV it held goes to the RAM cache first; when the load fails the slot is left empty."""
        self.ram.save(self.ctx, slot.seq, slot.cache)
        llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
        tokens = load()
        if tokens is None:
            llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
        slot.cache = tokens or []
        return tokens is not None

    def _reuse_chunks(self, slot: Slot, prompt: list[int], n_past: int) -> int:
        """llama.cpp server's ``n_cache_reuse``: shift matching chunks of the old KV into place after the prefix."""
        cache = slot.cache
        head_c = head_p = n_past
        while head_c < len(cache) and head_p < len(prompt):
            n = 0
            while head_c + n < len(cache) and head_p + n < len(prompt) and cache[head_c + n] == prompt[head_p + n]:
                n += 1
            if n >= self.cache_reuse:
                shift = head_p - head_c
                llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, head_p, head_c)
                llama_cpp.llama_memory_seq_add(self.mem, slot.seq, head_c, head_c + n, shift)
                cache[head_p: head_p + n] = cache[head_c: head_c + n]
                n_past += n
                head_c += n
                head_p += n
            else:
                head_c += 1
        slot.cache = cache[:n_past] if len(cache) >= n_past else cache
        return n_past

    def _step(self) -> None:
        """One decode of every generating slot's next token, then prompt chunks, each sampled right after its decode.

        Prompt chunks get their own ``llama_decode`` calls, never mixed with the generating rows: llama.cpp
        splits a multi-sequence batch into equal per-sequence pieces anyway, and keeping a request's shapes
        independent of its neighbours keeps its greedy output the same alone or batched.
        """
        for slot in self.slots:
            if slot.job is not None and slot.job.gone():
                self._finish(slot, "cancelled")
        rows: list[Slot] = []
        for slot in self.slots:
            if slot.job is None or slot.last is None:
                continue
            if len(slot.cache) >= self.n_ctx_slot and not self._shift(slot):
                self._finish(slot, "length")
                continue
            rows.append(slot)
        if rows:
            live = {s.seq for s in rows}
            fillers = self._fillers(live) if self.invariant and max(len(s.cache) for s in rows) >= FILLER_FROM else []
            index: dict[int, int] = {}
            for i, slot in enumerate(sorted([*rows, *fillers], key=lambda s: s.seq)):  # ascending: one ubatch
                real = slot.seq in live
                self._put(i, slot.last if real else 0, len(slot.cache), slot.seq, real)  # type: ignore[arg-type]
                index[slot.seq] = i
            self._decode(len(rows) + len(fillers))
            for slot in fillers:  # a filler's cell goes at once: its slot's KV is as it was
                llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, len(slot.cache), -1)
            for slot in rows:
                slot.cache.append(slot.last)  # type: ignore[arg-type]
                self._sample(slot, index[slot.seq])
        budget = self.n_batch
        for slot in self.slots:
            if slot.job is None or not slot.todo or budget < 2:
                continue
            if slot.todo[0] < 0:
                budget -= self._image(slot)
                continue
            take = self._chunk(text_run(slot.todo), min(budget, self.prompt_chunk))  # text up to the next image
            pos = len(slot.cache)
            for i in range(take):
                self._put(i, slot.todo[i], pos + i, slot.seq, i == take - 1 and take == len(slot.todo))
            self._decode(take)
            budget -= take
            slot.cache.extend(slot.todo[:take])
            slot.todo = slot.todo[take:]
            if not slot.todo:
                if self.file is not None and not self.file.save_all:
                    self.file.save(self.ctx, slot.seq, slot.cache)
                self._sample(slot, take - 1)

    def _fillers(self, live: set[int]) -> list[Slot]:
        """The idle slots :func:`filler_seqs` names, each with room in its stream for the throw-away cell."""
        fillers = [self.slots[seq] for seq in filler_seqs(live, len(self.slots))]
        for s in fillers:
            if len(s.cache) >= self.n_ctx_slot:  # a full stream has no cell for the filler: give up its last token
                llama_cpp.llama_memory_seq_rm(self.mem, s.seq, len(s.cache) - 1, -1)
                s.cache = s.cache[:-1]
        return fillers

    def _image(self, slot: Slot) -> int:
        """Evaluate the image at the head of the slot's prompt into its sequence; the embeddings it decoded."""
        job = slot.job
        key = slot.todo[0]
        n_pos = job.media.n_pos[key]  # type: ignore[union-attr]
        pos = len(slot.cache)
        self.model.projector.evaluate(self.ctx, job.media.chunks[key], pos, slot.seq, self.n_batch)  # type: ignore[union-attr]
        slot.cache.extend(slot.todo[:n_pos])
        slot.todo = slot.todo[n_pos:]
        return int(job.media.n_tokens[key])  # type: ignore[union-attr]

    @staticmethod
    def _chunk(remaining: int, limit: int) -> int:
        """Tokens to feed now: never leave a single token for a later chunk (it would take another kernel path)."""
        if remaining <= limit:
            return remaining
        return limit - 1 if remaining - limit == 1 else limit

    def _decode(self, n: int) -> None:
        self.batch.n_tokens = n
        rc = llama_cpp.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed ({rc})")

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self.batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = 1 if logits else 0

    def _shift(self, slot: Slot) -> bool:
        """Context shift: drop the older half after the kept prompt start; False when it is off or impossible."""
        if not self.context_shift or not self.can_shift:
            return False
        n_keep = min(len(slot.job.prompt) if slot.job else 0, self.n_ctx_slot // 2)
        n_past = len(slot.cache)
        n_discard = (n_past - n_keep) // 2
        if n_discard <= 0 or min(slot.cache[n_keep:n_keep + n_discard], default=0) < 0:
            return False  # an image's embeddings cannot be cut in half
        llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, n_keep, n_keep + n_discard)
        llama_cpp.llama_memory_seq_add(self.mem, slot.seq, n_keep + n_discard, n_past, -n_discard)
        slot.cache = slot.cache[:n_keep] + slot.cache[n_keep + n_discard:]
        return True

    def _logits(self, idx: int) -> Any:
        """Batch row ``idx``'s logits as a writable numpy view into the context's buffer.

        Views are kept by address: building one costs more than the argmax that reads it, once per token. A kept
        view is only handed out for the address llama.cpp has just returned for a row, where ``n_vocab`` floats
        are valid whatever buffer that memory now belongs to.
        """
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, idx)
        addr = ctypes.addressof(ptr.contents)  # ValueError for NULL (no logits for that row)
        view = self._views.get(addr)
        if view is None:
            import numpy as np

            if len(self._views) >= 4 * self.n_batch:
                self._views.clear()
            view = self._views[addr] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        return view

    def _sample(self, slot: Slot, idx: int) -> None:
        job = slot.job
        assert job is not None
        raw = logits = None
        try:
            if job.matcher is not None:
                logits = self._logits(idx)
                if job.request.logprobs is not None:
                    raw = logits.copy()  # logprobs report the model's own distribution, before the mask
                job.matcher.mask_logits(logits)  # the sampler chain then only sees tokens the constraint allows
            if job.greedy is not None:
                token = job.greedy.pick(self._logits(idx) if logits is None else logits)
            else:
                token = llama_cpp.llama_sampler_sample(job.sampler, self.ctx, idx)
            if job.matcher is not None:
                job.matcher.consume(token)  # a disallowed token (every allowed one biased to -inf) ends this request
        except ValueError as exc:  # ConstraintViolation: fail this request only, the other slots go on
            self._fail(slot, exc)
            return
        slot.last = token
        if self.model.is_eog(token):
            self._finish(slot, "stop")
            return
        job.generated += 1
        job.pending_tokens += 1
        piece = self.model.piece
        if job.request.logprobs is not None:
            job.pending_logprobs.append(token_logprob(self.ctx, idx, self.n_vocab, token, job.request.logprobs,
                                                      lambda t: self.model.llm.detokenize([t], special=True), raw))
        text, matched = job.stops.feed(job.utf8.feed(piece(token)))
        if not job.request.incremental:
            job.held.append(text)  # the client waits for the whole answer: no chunk per token
        elif text or matched is not None:
            job.deliver(GenerationChunk(text=text, tokens=job.pending_tokens, logprobs=job.pending_logprobs or None))
            job.pending_tokens, job.pending_logprobs = 0, []
        if matched is not None:
            self._finish(slot, "stop", matched)
        elif job.matcher is not None and job.matcher.done:
            self._finish(slot, "stop")  # the constrained output is complete: only the end could follow
        elif job.generated >= job.max_tokens:
            self._finish(slot, "length")

    def _finish(self, slot: Slot, reason: str, stop_sequence: str | None = None) -> None:
        job = slot.job
        assert job is not None
        text, job.held = "".join(job.held), []
        if stop_sequence is None:
            tail, _ = job.stops.feed(job.utf8.flush())
            tail += job.stops.flush()
            if reason != "cancelled":
                text += tail
        if text:
            job.deliver(GenerationChunk(text=text, tokens=job.pending_tokens, logprobs=job.pending_logprobs or None))
            job.pending_tokens, job.pending_logprobs = 0, []
        job.usage.completion_tokens = job.generated
        if self.file is not None and self.file.save_all and reason != "cancelled":
            self.file.save(self.ctx, slot.seq, slot.cache)  # prompt_cache_all: the generated tokens too
        job.deliver(GenerationChunk(tokens=job.pending_tokens, logprobs=job.pending_logprobs or None,
                                    finish_reason=reason, stop_sequence=stop_sequence, usage=job.usage))
        self._release(slot)

    def _fail(self, slot: Slot, exc: BaseException) -> None:
        assert slot.job is not None
        slot.job.deliver(exc)
        llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
        slot.cache = []
        self._release(slot)

    def _release(self, slot: Slot) -> None:
        job = slot.job
        assert job is not None
        free_sampler(job.sampler)
        job.sampler = None
        slot.job, slot.todo, slot.last = None, [], None
        slot.used = time.monotonic()
        with self.cond:
            self.inflight -= 1
            self.cond.notify_all()


def filler_seqs(live: set[int], n_slots: int) -> list[int]:
    """The idle sequences that get a throw-away row in a decode of the ``live`` ones (batch_invariant).

    With one KV stream per slot llama.cpp puts only consecutive sequence ids in one ubatch, and ggml-cpu's flash
    attention takes a split-KV kernel (other rounding) for a ubatch of one sequence over 512 or more cells. So a
    lone generating slot, or slots with idle ones between them, would get other logits than the same slots batched
    with neighbours: every decode in which a slot may reach 512 cells (``FILLER_FROM``) instead covers a consecutive
    run of at least two sequences, the idle ones with a row whose logits are not read and whose cell is removed
    after the decode. (The extra row costs about 9% of a lone slot's decode speed, so shorter contexts skip it.)
    """
    if n_slots < 2 or not live:
        return []
    lo, hi = min(live), max(live)
    if lo == hi:
        lo, hi = (lo, lo + 1) if lo + 1 < n_slots else (lo - 1, lo)
    return [seq for seq in range(lo, hi + 1) if seq not in live]


def text_run(tokens: list[int]) -> int:
    """How many text tokens lead ``tokens`` before an image's key (negative)."""
    for i, t in enumerate(tokens):
        if t < 0:
            return i
    return len(tokens)


@contextmanager
def batch_invariant_weights(enabled: bool) -> Iterator[None]:
    """Load weights without CPU repacking while ``enabled`` (``Llama`` has no argument for it).

    Repacked weights (e.g. q4_K_8x8) multiply groups of 4 batch rows with a gemm kernel and the rest with a
    gemv kernel that rounds differently, so a sequence's logits would depend on how many others share its
    batch and greedy output would change under load. Plain layouts compute every row alike.
    """
    if not enabled:
        yield
        return
    import llama_cpp.llama_cpp as native  # the module ``Llama`` calls it through

    original = native.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    native.llama_model_default_params = params
    try:
        yield
    finally:
        native.llama_model_default_params = original


def new_context(llm: Any, n_slots: int, own: bool) -> Any:
    """A context like ``llm``'s with ``n_slots`` sequences, each in its own KV stream of ``n_ctx / n_slots``.

    ``own``: the scheduler takes over ``llm._ctx`` (its KV is freed; ``llm.n_ctx()`` keeps answering);
    otherwise ``llm`` keeps its context (embeddings) and the scheduler gets a second one.
    """
    from llama_cpp._internals import LlamaContext

    params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
    params.n_seq_max = n_slots
    params.kv_unified = False
    params.embeddings = False
    if own:
        llm._ctx.close()
    ctx = LlamaContext(model=llm._model, params=params, verbose=llm.verbose)
    if own:
        llm._ctx = ctx
    return ctx


def stream(sched: Scheduler, job: Job) -> ChunkStream:
    """The worker's side of ``job``: iterated, or pushed from the scheduler thread (``localai.delivery``)."""
    return ChunkStream(job, sched.wake)
