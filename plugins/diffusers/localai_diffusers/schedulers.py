"""LocalAI's scheduler names -> diffusers scheduler classes (``k_``: the same with Karras sigmas).

The accepted names live in core (:data:`localai.config.SCHEDULER_TYPES`) so a typo fails at config load
in the server, which has no diffusers; this table must cover every one of them (a test checks).
"""

from __future__ import annotations

from typing import Any

SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpm_2": ("KDPM2DiscreteScheduler", {}),
    "dpm_2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_sde": ("DPMSolverSDEScheduler", {}),  # needs torchsde (in the engine extra)
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
}


def make_scheduler(name: str, current: Any) -> Any:
    """A scheduler of LocalAI's ``name`` built from the pipeline's current scheduler config."""
    import diffusers

    karras = name.startswith("k_")
    class_name, extra = SCHEDULERS[name[2:] if karras else name]
    cls = getattr(diffusers, class_name)
    kwargs = dict(extra)
    if karras:
        kwargs["use_karras_sigmas"] = True
    try:
        return cls.from_config(current.config, **kwargs)
    except ImportError as exc:  # DPMSolverSDEScheduler without torchsde
        raise RuntimeError(f"scheduler_type {name!r} ({class_name}) needs an extra package: {exc}") from exc
