"""Constraints on ik-llama-cpp through the shared engine (llguidance masks on the candidate logits).

Anything that loads an engine runs in a subprocess, so the ik libllama never shares a process with
another test's stock libllama (and ``sys.modules`` starts clean for the ``llama_cpp`` checks).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
from localai_ik_llama import grammar, plugin


def run_python(code: str, timeout: float = 300) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_constraints_need_llguidance_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grammar, "_engine_spec", lambda: None)
    with pytest.raises(NotImplementedError, match=r"pip install llguidance"):
        grammar.vocab_tokenizer(0)
    assert "grammar" not in plugin.capabilities()


def test_grammar_capability_is_registered_with_the_engine() -> None:
    assert grammar.converter_available()
    assert "grammar" in plugin.capabilities()


def test_engine_enforces_gbnf_and_json_schema_greedy_and_sampled_and_rejects_bad_grammars() -> None:
    """Through the worker-side model: the grammar wins over what the model would say, ends the generation once
    complete; a JSON schema's integer bounds hold; a grammar that does not parse is a ValueError; no ``llama_cpp``."""
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
        bounded = {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 10}},
                   "required": ["limit"]}
        out["json"] = []
        for temp in (0, 1.5):
            req = GenerateRequest(model="t", prompt="A JSON object with a big number:", max_tokens=40,
                                  sampling=SamplingParams(temperature=temp, seed=4),
                                  constraint=Constraint(type="json_schema", json_schema=bounded))
            chunks = list(m.generate(req, lambda: False))
            out["json"].append(["".join(c.text or "" for c in chunks), chunks[-1].finish_reason])
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
    assert result["bad"] and "grammar" in result["bad"]
    for text, finish in result["json"]:
        assert finish == "stop", text
        assert 1 <= json.loads(text)["limit"] <= 10
