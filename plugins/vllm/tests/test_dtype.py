"""The CPU dtype default: bfloat16 only where the CPU computes it natively (no vLLM needed)."""

from __future__ import annotations

from localai_vllm.model import cpu_dtype


def test_bfloat16_only_with_native_support() -> None:
    assert cpu_dtype("flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n") == "bfloat16"
    assert cpu_dtype("flags\t\t: fpu avx2 amx_bf16 amx_tile\n") == "bfloat16"
    assert cpu_dtype("flags\t\t: fpu sse avx2 fma f16c\n") == "float32"  # AVX2 only: bf16 would be emulated
    assert cpu_dtype("flags\t\t: fpu avx512f avx512bw\n") == "float32"
