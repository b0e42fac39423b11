"""Which concrete build a meta backend picks: the machine's accelerator, as LocalAI names it."""

from __future__ import annotations

import glob
import os
import platform
import shutil
import sys

FORCE_ENV = "LOCALAI_FORCE_META_BACKEND_CAPABILITY"


def detect() -> str:
    """``LOCALAI_FORCE_META_BACKEND_CAPABILITY``, else ``metal``, ``nvidia``, ``amd``, ``intel`` or ``default``."""
    forced = os.environ.get(FORCE_ENV, "").strip().lower()
    if forced:
        return forced
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "metal"
    if os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi"):
        return "nvidia"
    if os.path.exists("/dev/kfd") or os.path.isdir("/opt/rocm"):
        return "amd"
    for vendor in glob.glob("/sys/class/drm/renderD*/device/vendor"):
        try:
            if open(vendor).read().strip() == "0x8086":
                return "intel"
        except OSError:
            continue
    return "default"


def candidates(capability: str) -> list[str]:
    """Keys tried in a meta backend's ``capabilities`` map, most specific first: ``nvidia-cuda-12`` -> nvidia -> default."""
    keys = [capability]
    if "-" in capability:
        keys.append(capability.split("-", 1)[0])
    if capability in ("cpu", "default"):
        keys += ["default", "cpu"]
    else:
        keys.append("default")
    return list(dict.fromkeys(keys))
