"""Putting tools into a prompt whose chat template knows nothing about them.

The built-in prompt lists the functions as JSON and asks for a bare JSON call, the same shape the
constraint grammar produces and :class:`localai.tools.parsers.GenericParser` reads. A YAML
``template.function`` (Jinja2 over ``tools``/``functions`` and ``tool_choice``) replaces it.
"""

from __future__ import annotations

import json

from localai.chat import templates
from localai.types import Message, ToolCall, ToolChoice, ToolSpec

INTRO = "You can call these functions:"
FORMAT = ('To call a function, reply with only a JSON object like {"name": "<function name>", "arguments": '
          '{<argument name>: <value>}} and nothing else.')


def builtin_prompt(tools: list[ToolSpec], choice: ToolChoice) -> str:
    lines = [INTRO]
    for t in tools:
        lines.append(json.dumps({"name": t.name, "description": t.description or "", "parameters": t.parameters},
                                ensure_ascii=False))
    lines.append("")
    lines.append(FORMAT)
    if choice.mode == "named":
        lines.append(f"You must call the function {choice.name}.")
    elif choice.mode == "required":
        lines.append("You must call one of these functions.")
    else:
        lines.append("If no function fits, answer normally in plain text.")
    return "\n".join(lines)


def function_template_prompt(source: str, tools: list[ToolSpec], choice: ToolChoice) -> str:
    listed = templates.tools_for_template(tools) or []
    return templates._compile(source).render(tools=listed, functions=[t["function"] for t in listed],
                                             tool_choice=choice.model_dump()).strip()


def with_tool_prompt(messages: list[Message], text: str) -> list[Message]:
    """The tool prompt appended to the system message (or as a new one first)."""
    for i, m in enumerate(messages):
        if m.role == "system":
            merged = (m.text().rstrip() + "\n\n" + text) if m.text().strip() else text
            return [*messages[:i], m.model_copy(update={"content": merged}), *messages[i + 1:]]
    return [Message(role="system", content=text), *messages]


def name_tool_results(messages: list[Message]) -> list[Message]:
    """Give ``tool`` messages the function name their ``tool_call_id`` refers to (templates show it)."""
    names: dict[str, str] = {}
    out = []
    for m in messages:
        for c in m.tool_calls or []:
            names[c.id] = c.name
        if m.role == "tool" and not m.name and m.tool_call_id in names:
            m = m.model_copy(update={"name": names[m.tool_call_id]})
        out.append(m)
    return out


def calls_as_text(calls: list[ToolCall]) -> str:
    return "\n".join(json.dumps({"name": c.name, "arguments": _loads(c.arguments)}, ensure_ascii=False) for c in calls)


def _loads(arguments: str) -> object:
    try:
        return json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments


def flatten_tool_messages(messages: list[Message]) -> list[Message]:
    """For templates without tool support: calls become assistant text, results user text."""
    out = []
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            text = "\n".join(x for x in (m.text().strip(), calls_as_text(m.tool_calls)) if x)
            m = m.model_copy(update={"content": text, "tool_calls": None})
        elif m.role == "tool":
            label = f"Tool result ({m.name})" if m.name else "Tool result"
            m = Message(role="user", content=f"{label}: {m.text()}")
        out.append(m)
    return out

