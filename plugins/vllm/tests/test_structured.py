"""What vLLM is asked to enforce: the core's language (no engine needed; the server's environment runs this)."""

from __future__ import annotations

import pytest
from localai.config import ModelConfig
from localai.types import Constraint, JsonLimits
from localai_vllm.model import structured_output
from localai_vllm.options import DEFAULTS, parse


def test_json_schema_goes_in_normalised_with_the_core_options() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer", "nullable": True}}, "required": ["a"]}
    out = structured_output(Constraint(type="json_schema", json_schema=schema))["json"]
    assert out["additionalProperties"] is False                       # closed, as every other backend compiles it
    assert out["properties"]["a"]["type"] == ["integer", "null"]       # OpenAPI nullable rewritten exactly
    assert out["x-guidance"]["lenient"] is False
    # the default whitespace (json.dumps' spacing, nothing else) and a request's limits travel as they compile
    assert out["x-guidance"]["item_separator"] == ", " and out["x-guidance"]["whitespace_flexible"] is False
    loose = structured_output(Constraint(type="json_schema", json_schema={"type": "string"},
                                         limits=JsonLimits(whitespace="flexible", max_string_length=7)))["json"]
    assert loose["x-guidance"]["whitespace_pattern"] and loose["maxLength"] == 7
    assert structured_output(Constraint(type="json_schema"))["json"]["type"] == "object"   # json_object
    assert structured_output(Constraint(type="grammar", grammar='root ::= "x"')) == {"grammar": 'root ::= "x"'}
    with pytest.raises(NotImplementedError):
        structured_output(Constraint(type="grammar"))


def test_the_engine_uses_the_guidance_backend_unless_the_yaml_says_otherwise() -> None:
    cfg = ModelConfig.model_validate({"name": "m", "backend": "vllm", "parameters": {"model": "x"}})
    assert parse([], cfg)["engine_args"]["structured_outputs_config"] == {"backend": "guidance"}
    assert DEFAULTS["structured_outputs_config"] == {"backend": "guidance"}
    own = ModelConfig.model_validate({"name": "m", "backend": "vllm", "parameters": {"model": "x"},
                                      "engine_args": {"structured_outputs_config": {"backend": "xgrammar"}}})
    assert parse([], own)["engine_args"]["structured_outputs_config"] == {"backend": "xgrammar"}
