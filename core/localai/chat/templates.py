"""Rendering chats into prompts with Jinja2 chat templates.

Precedence: the YAML's ``template.chat`` (Jinja2), then the model file's own template, then a
built-in template chosen by the model's architecture. Gemma files without a template get Gemma's
turn format, never a llama-2 fallback.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from localai.types import Message, ToolSpec

GEMMA = """{{- bos_token -}}
{%- set sys = namespace(text='') -%}
{%- for m in messages if m.role == 'system' -%}{%- set sys.text = sys.text + m.content + '\\n\\n' -%}{%- endfor -%}
{%- set first = namespace(done=false) -%}
{%- for m in messages if m.role != 'system' -%}
{%- set role = 'model' if m.role == 'assistant' else 'user' -%}
<start_of_turn>{{ role }}
{% if not first.done and role == 'user' %}{{ sys.text }}{% endif -%}
{%- set first.done = true -%}
{%- if m.role == 'tool' -%}Tool result{% if m.name %} ({{ m.name }}){% endif %}: {% endif -%}
{{ m.content | trim }}
{%- if m.tool_calls -%}{%- for c in m.tool_calls %}
{{ c.function | tojson }}{%- endfor -%}{%- endif -%}
<end_of_turn>
{% endfor -%}
{%- if add_generation_prompt -%}<start_of_turn>model
{% endif -%}"""

CHATML = """{%- for m in messages -%}
<|im_start|>{{ m.role }}
{{ m.content }}
{%- if m.tool_calls -%}{%- for c in m.tool_calls %}
<tool_call>
{{ c.function | tojson }}
</tool_call>{%- endfor -%}{%- endif -%}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant
{% endif -%}"""

LLAMA3 = """{{- bos_token -}}
{%- for m in messages -%}
<|start_header_id|>{{ 'ipython' if m.role == 'tool' else m.role }}<|end_header_id|>

{{ m.content | trim }}
{%- if m.tool_calls -%}{%- for c in m.tool_calls -%}{{ c.function | tojson }}{%- endfor -%}{%- endif -%}
<|eot_id|>
{%- endfor -%}
{%- if add_generation_prompt -%}<|start_header_id|>assistant<|end_header_id|>

{% endif -%}"""

MISTRAL = """{{- bos_token -}}
{%- set sys = namespace(text='') -%}
{%- for m in messages if m.role == 'system' -%}{%- set sys.text = sys.text + m.content + '\\n\\n' -%}{%- endfor -%}
{%- for m in messages if m.role != 'system' -%}
{%- if m.role == 'user' or m.role == 'tool' -%}[INST] {% if loop.first %}{{ sys.text }}{% endif %}{{ m.content | trim }} [/INST]
{%- else -%}{{ m.content | trim }}{%- if m.tool_calls %}[TOOL_CALLS]{{ m.tool_calls | map(attribute='function') | list | tojson }}{% endif %}{{ eos_token }}
{%- endif -%}
{%- endfor -%}"""

BUILTIN_BY_ARCHITECTURE = {
    "gemma": GEMMA,
    "gemma2": GEMMA,
    "gemma3": GEMMA,
    "gemma3n": GEMMA,
    "llama": LLAMA3,
    "mistral": MISTRAL,
    "mistral3": MISTRAL,
}
DEFAULT_BUILTIN = CHATML


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda v, indent=None, ensure_ascii=False, **_: json.dumps(v, indent=indent, ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def choose_template(yaml_template: str | None, model_template: str | None, architecture: str | None) -> tuple[str, str]:
    """The template source to use and where it came from (``yaml``, ``model`` or ``builtin:<arch>``)."""
    if yaml_template:
        return yaml_template, "yaml"
    if model_template:
        return model_template, "model"
    arch = (architecture or "").lower()
    if arch in BUILTIN_BY_ARCHITECTURE:
        return BUILTIN_BY_ARCHITECTURE[arch], f"builtin:{arch}"
    return DEFAULT_BUILTIN, "builtin:chatml"


def template_messages(messages: list[Message], image_placeholder: str | None = None) -> list[dict[str, Any]]:
    """Messages as chat templates expect them (HF conventions: ``tool_calls[].function.arguments`` is a dict);
    images become ``image_placeholder`` inside the text, as llama.cpp's server passes them to a template."""
    out = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.text(image_placeholder)}
        if m.name:
            d["name"] = m.name
        if m.tool_call_id:
            d["tool_call_id"] = m.tool_call_id
        if m.tool_calls:
            calls = []
            for c in m.tool_calls:
                try:
                    args: Any = json.loads(c.arguments or "{}")
                except json.JSONDecodeError:
                    args = c.arguments
                calls.append({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": args}})
            d["tool_calls"] = calls
        if m.reasoning:
            d["reasoning_content"] = m.reasoning
        out.append(d)
    return out


def tools_for_template(tools: list[ToolSpec] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description or "", "parameters": t.parameters}}
        for t in tools
    ]


def template_renders_tools(source: str) -> bool:
    """Whether a chat template does something with ``tools`` (else the core injects a tool prompt)."""
    return "tools" in source


def render(
    source: str,
    messages: list[Message],
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
    add_generation_prompt: bool = True,
    tools: list[ToolSpec] | None = None,
    extra: dict[str, Any] | None = None,
    image_placeholder: str | None = None,
) -> str:
    """Render ``messages`` with ``source``; a leading BOS is stripped (the tokenizer adds it)."""
    template = _compile(source)
    text = template.render(
        messages=template_messages(messages, image_placeholder),
        bos_token=bos_token or "",
        eos_token=eos_token or "",
        add_generation_prompt=add_generation_prompt,
        tools=tools_for_template(tools),
        **(extra or {}),
    )
    if bos_token and text.startswith(bos_token):
        text = text[len(bos_token):]
    return text


def render_completion(source: str, prompt: str) -> str:
    """LocalAI's ``template.completion``: a Jinja2 template over ``prompt`` (also ``input``)."""
    return _compile(source).render(prompt=prompt, input=prompt, Input=prompt)
