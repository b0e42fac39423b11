"""Constraints on ik-llama-cpp: the standalone JSON-schema converter, and GBNF enforced by the engine.

Anything that loads an engine runs in a subprocess, so the ik libllama never shares a process with
another test's stock libllama (and ``sys.modules`` starts clean for the ``llama_cpp`` checks).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from localai_ik_llama import grammar, plugin


def run_python(code: str, timeout: float = 300) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_converter_loads_standalone_without_importing_llama_cpp() -> None:
    result = run_python("""
        import json, sys
        from localai_ik_llama import grammar
        gbnf = grammar.json_schema_to_gbnf({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
        print(json.dumps({"gbnf": gbnf, "llama_cpp": sorted(m for m in sys.modules if m == "llama_cpp" or m.startswith("llama_cpp.")),
                          "module": grammar.MODULE_NAME in sys.modules}))
    """)
    assert result["llama_cpp"] == []
    assert result["module"] is True
    assert "root ::=" in result["gbnf"] and '\\"n\\"' in result["gbnf"]


def test_converter_file_has_no_top_level_llama_cpp_import() -> None:
    path = grammar.converter_path()
    assert path is not None and path.name == "llama_grammar.py"
    top = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
    assert top and not [line for line in top if "llama_cpp" in line], top


def test_missing_llama_cpp_python_is_a_clear_not_implemented(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grammar, "_converter", None)
    monkeypatch.setattr(grammar, "converter_path", lambda: None)
    with pytest.raises(NotImplementedError, match=r"pip install llama-cpp-python"):
        grammar.constraint_grammar(SimpleNamespace(type="json_schema", json_schema={"type": "object"}, grammar=None))
    # raw GBNF needs no converter
    assert grammar.constraint_grammar(SimpleNamespace(type="grammar", grammar='root ::= "a"', json_schema=None)) == 'root ::= "a"'
    monkeypatch.setattr(grammar, "converter_available", lambda: False)
    assert "grammar" not in plugin.capabilities()


def test_grammar_capability_is_registered_with_the_converter() -> None:
    assert grammar.converter_available()
    assert "grammar" in plugin.capabilities()


def test_empty_grammar_and_bad_schema_are_value_errors() -> None:
    with pytest.raises(ValueError, match="no grammar"):
        grammar.constraint_grammar(SimpleNamespace(type="grammar", grammar="  ", json_schema=None))
    with pytest.raises(ValueError, match="JSON schema"):
        grammar.json_schema_to_gbnf({"$ref": "#/definitions/missing"})


def test_engine_enforces_gbnf_greedy_and_sampled_and_rejects_bad_grammars() -> None:
    """GBNF through the worker-side model: the grammar wins over what the model would say, ends the
    generation once complete, a grammar the engine cannot parse is a ValueError, and no ``llama_cpp``."""
    result = run_python("""
        import json, sys
        from localai.config import ModelConfig
        from localai.testing import default_gguf
        from localai.types import Constraint, GenerateRequest, SamplingParams
        from localai_ik_llama.model import IkLlamaModel

        cfg = ModelConfig.model_validate({"name": "t", "backend": "ik_llama", "context_size": 512, "threads": 2,
                                          "parameters": {"model": "x"}})
        m = IkLlamaModel.load(cfg, str(default_gguf()), {}, "ik-llama-cpp")
        prompt = "The three primary colors are"
        gbnf = 'root ::= "colors: " ("red" | "green" | "blue") (", " ("red" | "green" | "blue")){2} "."'
        out = {"info": m.info().supports_grammar, "runs": []}
        for temp in (0, 1.5):
            for seed in (1, 2, 3):
                req = GenerateRequest(model="t", prompt=prompt, max_tokens=40, constraint=Constraint(type="grammar", grammar=gbnf),
                                      sampling=SamplingParams(temperature=temp, seed=seed))
                chunks = list(m.generate(req, lambda: False))
                out["runs"].append(["".join(c.text or "" for c in chunks), chunks[-1].finish_reason])
        plain = list(m.generate(GenerateRequest(model="t", prompt=prompt, max_tokens=8, sampling=SamplingParams(temperature=0)),
                                lambda: False))
        out["plain"] = ["".join(c.text or "" for c in plain), plain[-1].finish_reason]
        try:
            list(m.generate(GenerateRequest(model="t", prompt=prompt, max_tokens=4,
                                            constraint=Constraint(type="grammar", grammar="root ::= undefined-rule")), lambda: False))
            out["bad"] = None
        except ValueError as exc:
            out["bad"] = str(exc)
        out["llama_cpp"] = "llama_cpp" in sys.modules
        print(json.dumps(out))
    """)
    assert result["info"] is True
    assert result["llama_cpp"] is False
    for text, finish in result["runs"]:
        assert re.fullmatch(r"colors: (red|green|blue)(, (red|green|blue)){2}\.", text), text
        assert finish == "stop"
    assert result["plain"][1] == "length" and not result["plain"][0].startswith("colors: ")
    assert result["bad"] and "could not parse" in result["bad"]
