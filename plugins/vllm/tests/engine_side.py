"""Test helpers run with the vLLM environment's Python (the test process has no torch).

    python engine_side.py save-hf GGUF OUT      an HF folder (safetensors + tokenizer) dequantized from the GGUF
    python engine_side.py st-encode FOLDER      JSON texts on stdin -> sentence-transformers vectors on stdout
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path


def save_hf(gguf: str, out: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf))
    tmp = Path(out + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    model.hf_quantizer = None  # dequantized already; the GGUF tag only stops save_pretrained
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main() -> None:
    cmd, *args = sys.argv[1:]
    if cmd == "save-hf":
        save_hf(*args)
    elif cmd == "st-encode":
        from sentence_transformers import SentenceTransformer

        texts = json.load(sys.stdin)
        json.dump(SentenceTransformer(args[0], device="cpu").encode(texts).astype("float64").tolist(), sys.stdout)
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
