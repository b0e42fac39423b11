"""What transformers' GGUF tokenizer conversion drops, put back from the GGUF's own metadata: shared by the
transformers backend (a model loaded from a ``.gguf``) and the test helper that writes an HF folder from one."""

from __future__ import annotations

from localai.gguf import gguf_metadata


def restore_gguf_tokenizer(tokenizer: object, gguf: str) -> None:
    """Put back what transformers' GGUF tokenizer conversion drops: the chat template, and whether BOS/EOS are
    added (Gemma's GGUF adds BOS; transformers 5.19 converts it without, so every prompt lost its ``<bos>`` and
    greedy text changed)."""
    # The core's header reader, not gguf-py's GGUFReader: that one decodes every array (Gemma's 262k-token
    # vocabulary) into Python objects, 14.5 s on 2 cores for three scalar keys.
    meta = gguf_metadata(gguf)
    value = meta.get

    template = value("tokenizer.chat_template")
    if template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = template  # type: ignore[attr-defined]
    for key, attr in (("tokenizer.ggml.add_bos_token", "add_bos_token"), ("tokenizer.ggml.add_eos_token", "add_eos_token")):
        flag = value(key)
        if flag is not None and hasattr(tokenizer, attr) and getattr(tokenizer, attr) != bool(flag):
            setattr(tokenizer, attr, bool(flag))
