"""The diffusers backend's ``options:`` entries. Runs in the server process: imports no engine."""

from __future__ import annotations

import os
from typing import Any

from localai.options import OptionSpec, parse_option_list

OPTIONS: list[OptionSpec] = [
    OptionSpec("queue_size", "int", "image requests that may wait while one generates; more get 429 queue_full",
               default=4, env="LOCALAI_DIFFUSERS_QUEUE_SIZE", minimum=0),
    OptionSpec("attention_slicing", "bool", "compute attention in slices: less memory, a little slower", default=False),
    OptionSpec("vae_tiling", "bool", "decode large images in tiles (less memory for big sizes)", default=False),
    OptionSpec("max_size", "int", "largest width or height accepted, in pixels", default=2048, minimum=8),
]


def parse(options: list[str], config: Any) -> dict[str, Any]:
    return parse_option_list(options, OPTIONS, dict(os.environ))
