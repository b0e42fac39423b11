"""The diffusers backend's ``options:`` entries. Runs in the server process: imports no engine."""

from __future__ import annotations

import os
from typing import Any

from localai.options import OptionSpec, parse_option_list

OPTIONS: list[OptionSpec] = [
    OptionSpec("queue_size", "int", "image requests that may wait while one generates; more get 429 queue_full",
               default=4, env="LOCALAI_DIFFUSERS_QUEUE_SIZE"),
    OptionSpec("attention_slicing", "bool", "compute attention in slices: less memory, a little slower", default=False),
    OptionSpec("vae_tiling", "bool", "decode large images in tiles (less memory for big sizes)", default=False),
    OptionSpec("max_size", "int", "largest width or height accepted, in pixels", default=2048),
]


def parse(options: list[str], config: Any) -> dict[str, Any]:
    parsed = parse_option_list(options, OPTIONS, dict(os.environ))
    if parsed["queue_size"] < 0:
        raise ValueError("option 'queue_size': must be 0 or more")
    if parsed["max_size"] < 8:
        raise ValueError("option 'max_size': must be at least 8")
    return parsed
