"""Test and benchmark helpers that need an engine: run with a backend environment's Python (which has
``localai-core``), never imported by the server. ``localai.testing.models`` calls them in a subprocess::

    python -m localai.testing.engine_side save-hf GGUF OUT     an HF folder (safetensors + tokenizer) dequantized from a GGUF
    python -m localai.testing.engine_side save-ov HF OUT       an OpenVINO IR folder exported from an HF folder (optimum-intel)
    python -m localai.testing.engine_side st-encode FOLDER     JSON texts on stdin -> sentence-transformers vectors on stdout
    python -m localai.testing.engine_side build-vision HF OUT  a tiny Gemma 3 vision model (HF folder) around an HF text folder
    python -m localai.testing.engine_side mmproj HF OUT SRC    its projector as an mmproj GGUF, by llama.cpp's converter in SRC
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


# Gemma 3's own chat template (google/gemma-3-*-it), which renders an image part as <start_of_image>; the processor
# expands that into <start_of_image> + image_seq_length x <image_soft_token> + <end_of_image>.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}{{ raise_exception('Invalid content type') }}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
VISION_TOKENS = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
VISION_SEED = 20250


def build_vision(hf_text: str, out: str) -> None:
    """A tiny Gemma 3 vision model (``Gemma3ForConditionalGeneration``): the real 270M text weights behind a 2-layer
    SigLIP tower (224 px, 14 px patches, 64 image tokens) whose weights are random from a fixed seed, so image
    tests run the real multimodal code paths offline. The projector is random too (HF starts it at zero, which
    would make every image the same), scaled so image embeddings are as large as Gemma's scaled text embeddings."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
        SiglipVisionConfig,
    )

    tmp = Path(out + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # <image_soft_token> is added at id 262144, one past the text vocabulary: Gemma 3 maps it to id 0 before the
    # embedding lookup and puts the image features there, so the text weights (and the GGUF) keep 262144 rows.
    tokenizer = AutoTokenizer.from_pretrained(hf_text, extra_special_tokens=VISION_TOKENS)
    ids = tokenizer.convert_tokens_to_ids(list(VISION_TOKENS.values()))
    assert ids == [255999, 256000, 262144], ids
    text = AutoModelForCausalLM.from_pretrained(hf_text, dtype=torch.float32)
    vision = SiglipVisionConfig(image_size=224, patch_size=14, num_hidden_layers=2, hidden_size=128,
                                intermediate_size=512, num_attention_heads=2, vision_use_head=False)
    text_config = {k: v for k, v in text.config.to_dict().items() if k != "_name_or_path"}  # no local path
    config = Gemma3Config(text_config=text_config, vision_config=vision.to_dict(), mm_tokens_per_image=64,
                          image_token_index=ids[2], boi_token_index=ids[0], eoi_token_index=ids[1],
                          bos_token_id=text.config.bos_token_id, eos_token_id=text.config.eos_token_id,
                          pad_token_id=text.config.pad_token_id)
    model = Gemma3ForConditionalGeneration(config).to(torch.float32).eval()
    model.model.language_model.load_state_dict(text.model.state_dict())
    model.lm_head.weight = model.model.language_model.embed_tokens.weight  # tied, as in the text model
    g = torch.Generator().manual_seed(VISION_SEED)
    embed = text.model.embed_tokens.weight.detach()
    text_rms = float(embed.pow(2).mean().sqrt()) * config.text_config.hidden_size ** 0.5  # Gemma scales by sqrt(d)
    with torch.no_grad():
        for name, p in sorted(model.model.vision_tower.named_parameters()):
            if p.ndim >= 2:  # matrices, conv kernels, position embeddings: variance-preserving
                p.copy_(torch.randn(p.shape, generator=g) / (p[0].numel() ** 0.5))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
        proj = model.model.multi_modal_projector
        proj.mm_soft_emb_norm.weight.copy_(0.1 * torch.randn(proj.mm_soft_emb_norm.weight.shape, generator=g))
        # The soft-emb norm leaves unit RMS, so entries of std text_rms / sqrt(128) give image embeddings of RMS text_rms.
        w = proj.mm_input_projection_weight
        w.copy_(torch.randn(w.shape, generator=g) * text_rms / w.shape[0] ** 0.5)
    model.generation_config = text.generation_config
    model.save_pretrained(tmp)
    image_processor = Gemma3ImageProcessorPil(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                                              image_std=[0.5] * 3, do_pan_and_scan=False)
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    Gemma3Processor(image_processor, tokenizer, chat_template=GEMMA3_CHAT_TEMPLATE,
                    image_seq_length=64).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


VLLM_IMAGE_TOKEN = "<unused0>"  # id 6: an unused token inside the 262144-row vocabulary


def build_vision_vllm(hf_text: str, out: str) -> None:
    """The :func:`build_vision` model (same weights) for vLLM, whose Gemma 3 vision class needs torchvision, which
    vLLM's CPU build cannot import: it serves the model through its Transformers modeling backend
    (``model_impl: transformers``) instead, which embeds every prompt id, image tokens included, so the image soft
    token here is ``<unused0>`` (id 6, inside the vocabulary) rather than ``<image_soft_token>`` (262144, one past
    it). Run it as ``python -c`` (see :func:`localai.testing.models.gemma_vision_vllm`)."""
    from transformers import AutoTokenizer, Gemma3ImageProcessorPil, Gemma3Processor

    base = out + ".base"
    build_vision(hf_text, base)
    tokens = {**VISION_TOKENS, "image_token": VLLM_IMAGE_TOKEN}
    tokenizer = AutoTokenizer.from_pretrained(hf_text, extra_special_tokens=tokens)
    ids = tokenizer.convert_tokens_to_ids(list(tokens.values()))
    assert ids == [255999, 256000, 6] and len(tokenizer) == 262144, (ids, len(tokenizer))
    tmp = Path(out + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(Path(base) / name, tmp / name)
    config = json.loads((tmp / "config.json").read_text())
    config["image_token_index"] = ids[2]
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    image_processor = Gemma3ImageProcessorPil(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                                              image_std=[0.5] * 3, do_pan_and_scan=False)
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    Gemma3Processor(image_processor, tokenizer, chat_template=GEMMA3_CHAT_TEMPLATE,
                    image_seq_length=64).save_pretrained(tmp)
    shutil.rmtree(base)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def mmproj(hf_vision: str, out: str, llama_cpp: str) -> None:
    """The vision tower and projector of a :func:`build_vision` folder as an mmproj GGUF, written by llama.cpp's
    own ``convert_hf_to_gguf.py --mmproj`` (from the llama.cpp source tree ``llama_cpp``, with its newer ``gguf-py``
    first on the path). The converter wants the tower under ``vision_tower.vision_model.*`` (transformers 5 saves
    ``vision_tower.*``), so it reads a small copy of the folder holding only the renamed vision tensors."""
    import subprocess
    import tempfile

    from safetensors import safe_open
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name in ("config.json", "processor_config.json"):
            shutil.copy(Path(hf_vision) / name, tmp / name)
        with safe_open(str(Path(hf_vision) / "model.safetensors"), "pt") as f:
            tensors = {k.replace("vision_tower.", "vision_tower.vision_model.", 1): f.get_tensor(k)
                       for k in f.keys() if k.startswith(("vision_tower.", "multi_modal_projector."))}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        path = [str(Path(llama_cpp) / "gguf-py"), *filter(None, [os.environ.get("PYTHONPATH")])]
        subprocess.run([sys.executable, str(Path(llama_cpp) / "convert_hf_to_gguf.py"), str(tmp), "--mmproj", "--outtype", "f32",
                        "--model-name", "gemma-3-270m-vision-test", "--outfile", out + ".tmp"],
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(path)}, check=True)
    os.replace(out + ".tmp", out)


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
    elif cmd == "build-vision":
        build_vision(*args)
    elif cmd == "mmproj":
        mmproj(*args)
    elif cmd == "st-encode":
        st_encode(*args)
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
