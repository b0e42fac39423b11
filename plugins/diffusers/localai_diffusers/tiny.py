"""A tiny Stable Diffusion pipeline built from configs, for tests and benchmarks where no weights exist.

``python -m localai_diffusers.tiny FOLDER [--seed N]`` writes a diffusers-layout folder (UNet, VAE, CLIP text
encoder, a CLIP BPE tokenizer made from a generated vocabulary, a PNDM scheduler) with fixed random weights.
Its images are noise, but it loads through the same ``from_pretrained`` path as a real checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins GPT-2/CLIP byte-level BPE uses for bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A CLIP BPE vocabulary: every byte alone and word-final, a few merges, and CLIP's two special tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_chars()
    tokens = chars + [c + "</w>" for c in chars]
    merges = ["t h", "th e</w>", "a n", "i n", "o n</w>", "c a", "ca t</w>"]
    for merge in merges:
        tokens.append(merge.replace(" ", ""))
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    vocab_file = folder / "vocab.json"
    merges_file = folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False))
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vocab_file, merges_file


def _tokenizer(cls: Any, vocab_file: Path, merges_file: Path) -> Any:
    """transformers 5 takes the vocabulary and merges themselves; 4.x takes their files."""
    import inspect

    if "vocab_file" in inspect.signature(cls.__init__).parameters:
        return cls(vocab_file=str(vocab_file), merges_file=str(merges_file), model_max_length=77)
    vocab = json.loads(vocab_file.read_text())
    merges = [tuple(line.split()) for line in merges_file.read_text().splitlines()[1:] if line.strip()]
    return cls(vocab=vocab, merges=merges, model_max_length=77)


def build(folder: str | Path, seed: int = 0, sample_size: int = 32) -> Path:
    """Build and ``save_pretrained`` the tiny pipeline into ``folder``; returns the folder."""
    import tempfile

    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    # Real Stable Diffusion's shape (VAE factor 8, so 256x256 images are 32x32 latents), a fraction of its width.
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=sample_size, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = write_tokenizer_files(Path(tmp))
        tokenizer = _tokenizer(CLIPTokenizer, vocab_file, merges_file)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
    ))
    scheduler = PNDMScheduler(skip_prk_steps=True, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localai_diffusers.tiny", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="where to write the pipeline (diffusers layout)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = parser.parse_args(argv)
    print(build(args.folder, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
