"""Is a model a base (pretrained) model or an instruction-tuned one? Decided before it loads, from real signals.

A base model continues text; asked "Write a short story", it writes more prompt-like text, which a newcomer takes
for a broken server. So the server says which kind each model is (``/v1/models``, the web UI, the start-up log),
from, in order: the YAML's ``base_model`` (true/false: the user's word wins), LocalAI's ``known_usecases`` (listing
completion but not chat means base), and a GGUF's header (``general.finetune`` and ``general.name`` naming
instruct/chat tuning or a base, then whether it carries a chat template). Never from a file name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from localai.config import ModelConfig
from localai.gguf import gguf_metadata

INSTRUCT_WORDS = re.compile(r"(?:^|[\s_\-.])(it|instruct|chat|sft|rlhf|dpo)(?:$|[\s_\-.\d])", re.IGNORECASE)
BASE_WORDS = re.compile(r"(?:^|[\s_\-.])(base|pt|pretrain(?:ed)?)(?:$|[\s_\-.\d])", re.IGNORECASE)


@dataclass(frozen=True)
class ModelKind:
    kind: str  # "base" or "instruct"
    because: str  # the signal, in words: shown next to the label

    @property
    def base(self) -> bool:
        return self.kind == "base"


def model_kind(config: ModelConfig, model_path: Path | None) -> ModelKind | None:
    """The model's kind and why, or ``None`` where nothing says (an embeddings or image model, an unreadable file)."""
    declared = config.base_model
    if declared is not None:
        return ModelKind("base" if declared else "instruct", f"the model YAML says base_model: {str(declared).lower()}")
    uses = {u.lower().replace("flag_", "") for u in config.known_usecases}
    if uses and "completion" in uses and "chat" not in uses:
        return ModelKind("base", "the model YAML's known_usecases list completion but not chat")
    if config.embeddings or uses & {"embeddings", "image"} or model_path is None or model_path.suffix.lower() != ".gguf":
        return None
    if not model_path.is_file():  # a folder, a missing file, a FIFO (whose open would wait forever at start-up)
        return None
    try:
        meta = gguf_metadata(str(model_path))
    except (OSError, ValueError):
        return None
    name = " ".join(str(meta.get(k) or "") for k in ("general.finetune", "general.name"))
    words = name.strip() or "(none)"
    if INSTRUCT_WORDS.search(name):
        return ModelKind("instruct", f"its GGUF names instruction tuning ({words!r})")
    if BASE_WORDS.search(name):
        return ModelKind("base", f"its GGUF names a base model ({words!r})")
    if meta.get("tokenizer.chat_template"):
        return ModelKind("instruct", "its GGUF carries a chat template")
    return ModelKind("base", f"its GGUF has no chat template and its name ({words!r}) names no instruction tuning")
