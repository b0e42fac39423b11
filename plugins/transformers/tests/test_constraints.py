"""The transformers backend enforces constraints through the core's one engine, in the core's language.

Run in the backend's own environment (torch) on the real Gemma tokenizer: the grammar it compiles is the one
``localai.constraints.grammar_for`` gives every backend, and the language differs from plain llguidance where the
core deliberately differs (objects without a word on extra keys are closed, as on llama-cpp and vLLM).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

CHECK = r'''
import json, sys
from transformers import AutoTokenizer
from localai.constraints import ConstraintRefused, grammar_for
from localai.types import Constraint
from localai_transformers.constraints import compile_constraint

tok = AutoTokenizer.from_pretrained(sys.argv[1])
n_vocab, eos = len(tok), [tok.eos_token_id]
schema = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 9}}, "required": ["a"]}
c = Constraint(type="json_schema", json_schema=schema)
enforcer = compile_constraint(c, tok, n_vocab, eos)
out = {"same_grammar": enforcer.grammar == grammar_for(c)}
m = enforcer.matcher
for t in tok.encode('{"a": ', add_special_tokens=False):  # the default whitespace: json.dumps' ", " and ": "
    m.consume(t)
one = tok.convert_tokens_to_ids("1")
out["digit_allowed"] = m.allows(one)
m.consume(one)
out["close_allowed"] = m.allows(tok.convert_tokens_to_ids("}"))
out["comma_allowed"] = m.allows(tok.convert_tokens_to_ids(","))  # a second key: closed objects have none
out["more_digits_allowed"] = m.allows(tok.convert_tokens_to_ids("0"))  # 10 > maximum 9
try:
    compile_constraint(Constraint(type="json_schema", json_schema={"type": "string", "pattern": "(?<=a)b"}), tok, n_vocab, eos)
    out["refused"] = None
except ConstraintRefused as exc:
    out["refused"] = exc.code
print(json.dumps(out))
'''


def test_transformers_compiles_the_cores_grammar_and_enforces_its_language(engine_python: str, gemma_hf: Path) -> None:
    r = subprocess.run([engine_python, "-c", CHECK, str(gemma_hf)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["same_grammar"], "the backend must compile the core's grammar, not its own"
    assert out["digit_allowed"] and out["close_allowed"]
    assert not out["comma_allowed"], "an object without additionalProperties is closed, as on every other backend"
    assert not out["more_digits_allowed"], "maximum 9 is enforced"
    assert out["refused"] is not None, "what llguidance cannot enforce is refused (a 400), never loosened"
