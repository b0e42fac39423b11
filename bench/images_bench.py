"""Seconds per image for the tiny Stable Diffusion pipeline: raw diffusers vs the plugin vs the HTTP route.

Run with the diffusers engine's interpreter (it needs torch, diffusers and localai-diffusers)::

    .venv-diffusers/bin/python bench/images_bench.py                    # 256x256, 4 and 25 steps, 3 rounds
    .venv-diffusers/bin/python bench/images_bench.py --steps 4 25 --size 256 --rounds 5 --no-http

The tiny pipeline (``localai_diffusers.tiny``: random weights, Stable Diffusion's shape at a fraction of its
width) is built into a temporary folder. Baseline: the diffusers pipeline called directly. Then the plugin's
model object in-process (``DiffusersModel.generate_image``: PNG encoding, step callback) and the whole route
(``POST /v1/images/generations`` through a server and its worker, b64_json). Ratios are against the baseline
measured in the same run; the targets run one after another so they never share the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx


def timed(fn, rounds: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 25])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-http", action="store_true", help="skip the server route")
    args = parser.parse_args()

    import torch
    from diffusers import AutoPipelineForText2Image
    from localai.config import ModelConfig
    from localai.testing import ServerProcess
    from localai.types import ImageRequest
    from localai_diffusers.model import DiffusersModel
    from localai_diffusers.tiny import build

    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        build(models / "tiny-sd")
        (models / "tiny.yaml").write_text("name: tiny-sd\nbackend: diffusers\nparameters:\n  model: tiny-sd\n")
        pipe = AutoPipelineForText2Image.from_pretrained(models / "tiny-sd", torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        config = ModelConfig.model_validate({"name": "tiny-sd", "backend": "diffusers", "parameters": {"model": "tiny-sd"}})
        plugin = DiffusersModel.load(config, str(models / "tiny-sd"), {"queue_size": 4, "max_size": 2048})
        size = args.size
        print(f"tiny SD pipeline, {size}x{size}, 1 image per request, median of {args.rounds} rounds, "
              f"torch {torch.__version__} on {torch.get_num_threads()} threads")
        rows = []
        for steps in args.steps:
            def raw() -> None:
                pipe("a cat", num_inference_steps=steps, width=size, height=size, generator=torch.Generator("cpu").manual_seed(0))

            def via_plugin() -> None:
                plugin.generate_image(ImageRequest(model="tiny-sd", prompt="a cat", width=size, height=size, steps=steps, seed=0),
                                      lambda: False)

            base = timed(raw, args.rounds)
            row = {"steps": steps, "diffusers": base, "plugin": timed(via_plugin, args.rounds)}
            rows.append(row)
        plugin.close()
        pipe = None  # its memory back before the HTTP rounds
        if not args.no_http:
            with ServerProcess(models) as server:
                for row in rows:
                    def via_http(steps: int = row["steps"]) -> None:  # type: ignore[assignment]
                        r = httpx.post(server.url + "/v1/images/generations", timeout=600, json={
                            "model": "tiny-sd", "prompt": "a cat", "size": f"{size}x{size}", "step": steps, "seed": 0,
                            "response_format": "b64_json"})
                        r.raise_for_status()

                    row["http"] = timed(via_http, args.rounds)
        print(f"{'steps':>5}  {'diffusers s/img':>15}  {'plugin s/img':>12}  {'ratio':>5}  {'HTTP s/img':>10}  {'ratio':>5}")
        for row in rows:
            http = row.get("http")
            print(f"{row['steps']:>5}  {row['diffusers']:>15.3f}  {row['plugin']:>12.3f}  {row['plugin'] / row['diffusers']:>5.2f}  "
                  + (f"{http:>10.3f}  {http / row['diffusers']:>5.2f}" if http else f"{'-':>10}  {'-':>5}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
