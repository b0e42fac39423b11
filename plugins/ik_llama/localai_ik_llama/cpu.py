"""CPU feature checks: the ik_llama.cpp wheel is built for AVX2 and dies with SIGILL without it."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of ``/proc/cpuinfo`` text (x86 ``flags`` or ARM ``Features`` lines)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def missing_avx2(cpuinfo: str | None = None) -> str | None:
    """Why this CPU cannot run the engine, or ``None`` when it has AVX2.

    ``cpuinfo`` defaults to this machine's ``/proc/cpuinfo``; where that file does not exist
    (macOS, Windows) the check is left to the engine.
    """
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return None
    flags = cpu_flags(cpuinfo)
    if not flags:
        return None
    if "avx2" not in flags:
        return (f"ik_llama.cpp needs a CPU with AVX2 (this {platform.machine() or 'CPU'} reports no avx2 flag "
                "in /proc/cpuinfo); use the llama-cpp backend instead")
    return None


def has_flag(name: str, cpuinfo: str | None = None) -> bool:
    try:
        text = CPUINFO.read_text(errors="replace") if cpuinfo is None else cpuinfo
    except OSError:
        return False
    return name in cpu_flags(text)


def has_vnni(cpuinfo: str | None = None) -> bool:
    """AVX-VNNI (or AVX512-VNNI): where ik_llama.cpp's CPU flash attention is safe on long prompts."""
    return has_flag("avx_vnni", cpuinfo) or has_flag("avx512_vnni", cpuinfo)
