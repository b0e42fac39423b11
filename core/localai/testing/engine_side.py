"""Test and benchmark helpers that need an engine: run with a backend environment's Python (which has
``localai-core``), never imported by the server. ``localai.testing.models`` calls them in a subprocess::

    python -m localai.testing.engine_side save-hf GGUF OUT     an HF folder (safetensors + tokenizer) dequantized from a GGUF
    python -m localai.testing.engine_side save-ov HF OUT       an OpenVINO IR folder exported from an HF folder (optimum-intel)
    python -m localai.testing.engine_side st-encode FOLDER     JSON texts on stdin -> sentence-transformers vectors on stdout
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from localai.chat.gguf import restore_gguf_tokenizer


def save_hf(gguf: str, out: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf))
    tmp = Path(out + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    restore_gguf_tokenizer(tokenizer, gguf)
    tokenizer.save_pretrained(tmp)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # The weights are dequantized (float32) already; transformers still tags the model as GGUF-quantized,
    # which save_pretrained refuses: drop the tag so the folder is a plain safetensors checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # atomic: a half-written folder is never taken for a model


def save_ov(hf: str, out: str) -> None:
    from optimum.intel import OVModelForCausalLM
    from transformers import AutoTokenizer

    tmp = Path(out + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    OVModelForCausalLM.from_pretrained(hf, export=True, compile=False).save_pretrained(tmp)
    AutoTokenizer.from_pretrained(hf).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def st_encode(folder: str) -> None:
    from sentence_transformers import SentenceTransformer

    texts = json.load(sys.stdin)
    vectors = SentenceTransformer(folder, device="cpu").encode(texts, convert_to_numpy=True)
    json.dump(vectors.astype("float64").tolist(), sys.stdout)


def main() -> None:
    cmd, *args = sys.argv[1:]
    if cmd == "save-hf":
        save_hf(*args)
    elif cmd == "save-ov":
        save_ov(*args)
    elif cmd == "st-encode":
        st_encode(*args)
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
