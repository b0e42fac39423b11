"""The AVX2 requirement: /proc/cpuinfo parsing and the load-time refusal (no engine needed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from localai_ik_llama import cpu, plugin

X86_AVX2 = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 avx_vnni
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu vme sse sse2 avx avx2
"""
X86_OLD = """processor\t: 0
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx
"""
ARM = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32
"""


def test_flags_parsed_from_x86_flags_lines() -> None:
    flags = cpu.cpu_flags(X86_AVX2)
    assert {"avx2", "avx_vnni", "fma", "sse4_2"} <= flags
    assert "GenuineIntel" not in flags and "spectre_v1" not in flags


def test_flags_parsed_from_arm_features() -> None:
    assert "asimd" in cpu.cpu_flags(ARM)


def test_avx2_present_is_fine() -> None:
    assert cpu.missing_avx2(X86_AVX2) is None


@pytest.mark.parametrize("text", [X86_OLD, ARM])
def test_avx2_missing_is_explained(text: str) -> None:
    reason = cpu.missing_avx2(text)
    assert reason is not None and "AVX2" in reason and "llama-cpp" in reason


def test_avx2_lookalike_flag_does_not_count() -> None:
    assert cpu.missing_avx2("flags : avx avx512f avx2x\n") is not None


def test_no_cpuinfo_leaves_it_to_the_engine() -> None:
    assert cpu.missing_avx2("") is None


def test_load_refuses_cpu_without_avx2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text(X86_OLD)
    monkeypatch.setattr(cpu, "CPUINFO", fake)
    config = SimpleNamespace(name="old-cpu")
    with pytest.raises(RuntimeError, match="old-cpu.*AVX2"):
        plugin.load(config, "/nonexistent.gguf", {})
    assert "AVX2" in (plugin.check() or "")


def test_check_passes_here_with_avx2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text(X86_AVX2)
    monkeypatch.setattr(cpu, "CPUINFO", fake)
    assert plugin.check() is None
