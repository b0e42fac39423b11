"""Planning: which prompt, constraint and parser a request gets; schemas the grammar is built from."""

from __future__ import annotations

import json

import jsonschema
import pytest
from localai import hookimpl
from localai.chat import templates
from localai.config import ModelConfig, TemplateConfig
from localai.errors import APIError
from localai.registry.plugins import PluginManager
from localai.tools import parsers, plan, registry, schema
from localai.types import GenerateRequest, Message, ModelInfo, ResponseFormat, ToolCall, ToolChoice, ToolSpec

WEATHER = ToolSpec(name="get_weather", description="Weather in a city", parameters={
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city"]})
ADD = ToolSpec(name="add", parameters={"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                                       "required": ["a", "b"]})
GEMMA_INFO = ModelInfo(backend="llama-cpp", architecture="gemma3", supports_grammar=True)
CONFIG = ModelConfig(name="m")
USER = [Message(role="user", content="Weather in Paris?")]


def request(**kw) -> GenerateRequest:
    return GenerateRequest(model="m", messages=kw.pop("messages", USER), **kw)


def gemma_plan(req: GenerateRequest, config: ModelConfig = CONFIG):
    return plan(req, template_source=templates.GEMMA, info=GEMMA_INFO, config=config)


def test_required_builds_a_schema_that_accepts_exactly_calls_to_offered_tools():
    p = gemma_plan(request(tools=[WEATHER, ADD], tool_choice=ToolChoice(mode="required", parallel=False)))
    assert isinstance(p.parser, parsers.ConstrainedParser)
    s = p.constraint.json_schema
    jsonschema.validate({"name": "get_weather", "arguments": {"city": "Paris"}}, s)
    jsonschema.validate({"name": "add", "arguments": {"a": 1, "b": 2}}, s)
    for bad in ({"name": "add", "arguments": {"a": "x", "b": 2}}, {"name": "nope", "arguments": {}},
                {"name": "get_weather", "arguments": {}}, [{"name": "add", "arguments": {"a": 1, "b": 2}}]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, s)


def test_parallel_allows_a_list_of_calls():
    s = gemma_plan(request(tools=[WEATHER, ADD], tool_choice=ToolChoice(mode="required"))).constraint.json_schema
    jsonschema.validate([{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "get_weather", "arguments": {"city": "x"}}], s)
    jsonschema.validate({"name": "add", "arguments": {"a": 1, "b": 2}}, s)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([], s)


def test_named_tool_is_the_only_one_allowed_and_prompted():
    p = gemma_plan(request(tools=[WEATHER, ADD], tool_choice=ToolChoice(mode="named", name="add")))
    jsonschema.validate({"name": "add", "arguments": {"a": 1, "b": 2}}, p.constraint.json_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "get_weather", "arguments": {"city": "x"}}, p.constraint.json_schema)
    system = p.messages[0]
    assert system.role == "system" and '"add"' in system.text() and "get_weather" not in system.text()


def test_bad_tool_choice_and_schemas_are_400s():
    for req in (request(tools=[WEATHER], tool_choice=ToolChoice(mode="named", name="nope")),
                request(tool_choice=ToolChoice(mode="required")),
                request(tools=[ToolSpec(name="x", parameters={"type": "wat"})]),
                request(response_format=ResponseFormat(type="json_schema", schema={"type": 5}))):
        with pytest.raises(APIError) as err:
            gemma_plan(req)
        assert err.value.status == 400


def test_auto_uses_the_builtin_prompt_and_generic_parser_for_gemma():
    p = gemma_plan(request(tools=[WEATHER]))
    assert p.constraint is None and p.template_tools is None
    assert isinstance(p.parser, parsers.GenericParser)
    assert "get_weather" in p.messages[0].text() and p.messages[1:] == USER
    prompt = templates.render(templates.GEMMA, p.messages, bos_token="<bos>")
    assert prompt.startswith("<start_of_turn>user\nYou can call these functions:")


def test_tool_choice_none_keeps_tools_out_of_the_prompt():
    p = gemma_plan(request(tools=[WEATHER], tool_choice=ToolChoice(mode="none")))
    assert p.messages == USER and p.constraint is None and isinstance(p.parser, parsers.TextParser)


def test_template_that_renders_tools_gets_them_and_its_family_parser():
    qwen = "{% for t in tools %}{{ t.function.name }}{% endfor %}<tool_call>{{ messages }}"
    p = plan(request(tools=[WEATHER]), template_source=qwen, info=ModelInfo(architecture="qwen2"), config=CONFIG)
    assert p.template_tools == [WEATHER] and p.messages[0].role == "user"
    assert isinstance(p.parser, parsers.HermesParser)


def test_yaml_function_template_and_tool_parser():
    cfg = ModelConfig(name="m", tool_parser="mistral",
                      template=TemplateConfig(function="Tools: {% for f in functions %}{{ f.name }} {% endfor %}"))
    p = gemma_plan(request(tools=[WEATHER, ADD]), cfg)
    assert p.messages[0].text() == "Tools: get_weather add" and isinstance(p.parser, parsers.MistralParser)
    with pytest.raises(APIError):
        gemma_plan(request(tools=[WEATHER]), ModelConfig(name="m", tool_parser="nope"))


def test_response_format_and_tools_in_auto_mode_allow_either():
    answer = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    p = gemma_plan(request(tools=[WEATHER], response_format=ResponseFormat(type="json_schema", schema=answer)))
    jsonschema.validate({"city": "Paris"}, p.constraint.json_schema)
    jsonschema.validate({"name": "get_weather", "arguments": {"city": "Paris"}}, p.constraint.json_schema)
    assert gemma_plan(request(response_format=ResponseFormat(type="json_object"))).constraint.json_schema == {"type": "object"}


def test_defs_are_hoisted_so_refs_resolve_and_convert_to_a_grammar():
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    tool = ToolSpec(name="book", parameters={"type": "object", "properties": {"who": {"$ref": "#/$defs/Person"}},
                                             "required": ["who"], "$defs": {"Person": {"type": "object", "properties": {
                                                 "name": {"type": "string"}}, "required": ["name"]}}})
    s = schema.tool_call_schema([tool, ADD], parallel=True)
    jsonschema.validate({"name": "book", "arguments": {"who": {"name": "Ann"}}}, s)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "book", "arguments": {"who": {"nom": "Ann"}}}, s)
    grammar = json_schema_to_gbnf(json.dumps(s))
    assert '\\"book\\"' in grammar and "root ::=" in grammar


def test_tool_history_renders_in_templates_without_tool_support():
    history = [*USER, Message(role="assistant", tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')]),
               Message(role="tool", tool_call_id="call_1", content="18 C, sunny")]
    bare = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    p = plan(request(messages=history), template_source=bare, info=ModelInfo(), config=CONFIG)
    text = templates.render(bare, p.messages)
    assert '[assistant] {"name": "get_weather", "arguments": {"city": "Paris"}}' in text
    assert "[user] Tool result (get_weather): 18 C, sunny" in text
    gemma = templates.render(templates.GEMMA, gemma_plan(request(messages=history)).messages)
    assert '<start_of_turn>model\n{"name": "get_weather", "arguments": {"city": "Paris"}}<end_of_turn>' in gemma
    assert "<start_of_turn>user\nTool result (get_weather): 18 C, sunny<end_of_turn>" in gemma


def test_prompt_that_opens_thinking_starts_the_parser_in_reasoning():
    p = gemma_plan(request())
    p.rendered("<|im_start|>assistant\n<think>\n")
    assert p.parser.feed("hmm</think>ok") and p.parser.mode == "text"


def test_registry_choice_and_plugin_hook():
    reg = registry.builtin()
    assert reg.choose(None, "... [TOOL_CALLS] ...", None) == "mistral"
    assert reg.choose(None, None, "qwen3") == "hermes"
    assert reg.choose(None, "plain", "gemma3") == "generic"

    class Custom(parsers.ToolCallParser):
        syntaxes = (parsers.CallSyntax("<call>", "</call>"),)

    class Plugin:
        @hookimpl
        def register_tool_parsers(self, register):
            register("custom", Custom, architectures=("mymodel",), markers=("<call>",))

    pm = PluginManager()
    pm.add_plugin(Plugin(), "custom-plugin")
    reg = registry.with_plugins(pm)
    assert reg.choose(None, "uses <call> and <tool_call>", None) == "custom"
    assert reg.choose(None, None, "mymodel") == "custom"
    p = reg.create("custom").configure(["add"])
    events = p.feed('<call>{"name": "add", "arguments": {"a": 1, "b": 2}}</call>') + p.finish()
    assert [type(e).__name__ for e in events] == ["ToolCallStart", "ToolCallDelta", "ToolCallEnd"]
