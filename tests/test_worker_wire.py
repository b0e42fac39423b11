"""The server-worker wire format (localai.worker.protocol)."""

from __future__ import annotations


def test_embedding_vectors_travel_as_float32_and_come_back_exactly() -> None:
    """The worker packs vectors as base64 float32; the server gets the same float32 values, shapes and counts."""
    from array import array

    from localai.types import EmbeddingResult
    from localai.worker import protocol

    vectors = [list(array("f", [0.1, -2.5, 3.25e-7])), list(array("f", [1.0])), []]
    packed = protocol.pack_result(EmbeddingResult(vectors=vectors, prompt_tokens=7))
    assert "vectors" not in packed and isinstance(packed["vectors_f32"], str)
    wire = protocol.decode(protocol.encode({"id": 1, "type": "result", "data": packed}))["data"]
    back = EmbeddingResult.model_validate(protocol.unpack_result(wire))
    assert back.vectors == vectors and back.prompt_tokens == 7
    assert protocol.unpack_result({"tokens": [1, 2]}) == {"tokens": [1, 2]}  # other results pass through
