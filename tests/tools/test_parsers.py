"""Parser unit tests on recorded model outputs, each fed whole, char by char and split at every position."""

from __future__ import annotations

import pytest
from localai.tools import parsers

from tests.tools.streams import run, splits

WEATHER = ["get_weather", "add"]

# Recorded outputs (family formats as the models print them; the Gemma ones came from Gemma 3 270M).
HERMES_QWEN = ('I will check both cities.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", '
               '"note": "say \\"hi\\" {not json}"}}\n</tool_call>\n<tool_call>\n{"name": "get_weather", '
               '"arguments": {"city": "Rome"}}\n</tool_call>')
QWEN3_THINK = ('<think>\nThe user wants the weather; I should call get_weather.\n</think>\n\n<tool_call>\n'
               '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
LLAMA31_JSON = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
LLAMA31_TAG = '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}; {"name": "add", "parameters": {"a": 1, "b": 2}}'
MISTRAL_V3 = '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "add", "arguments": {"a": 1, "b": 2}}]'
MISTRAL_V11 = '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]add[ARGS]{"a": 1, "b": 2}'
GEMMA_CONSTRAINED = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}'
GEMMA_FENCED = '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```'

PARIS = ("get_weather", {"city": "Paris"})
ADD = ("add", {"a": 1, "b": 2})

CASES = [
    (parsers.HermesParser, HERMES_QWEN, "I will check both cities.",
     [("get_weather", {"city": "Paris", "note": 'say "hi" {not json}'}), ("get_weather", {"city": "Rome"})]),
    (parsers.HermesParser, QWEN3_THINK, "", [PARIS]),
    (parsers.Llama3Parser, LLAMA31_JSON, "", [PARIS]),
    (parsers.Llama3Parser, LLAMA31_TAG, "", [PARIS, ADD]),
    (parsers.MistralParser, MISTRAL_V3, "", [PARIS, ADD]),
    (parsers.MistralParser, MISTRAL_V11, "", [PARIS, ADD]),
    (parsers.JsonParser, GEMMA_FENCED, "", [PARIS]),
    (parsers.GenericParser, GEMMA_FENCED, "", [PARIS]),
    (parsers.GenericParser, HERMES_QWEN, "I will check both cities.",
     [("get_weather", {"city": "Paris", "note": 'say "hi" {not json}'}), ("get_weather", {"city": "Rome"})]),
    (parsers.GenericParser, MISTRAL_V3, "", [PARIS, ADD]),
    (parsers.ConstrainedParser, GEMMA_CONSTRAINED, "", [("get_weather", {"city": "Paris", "unit": "celsius"})]),
    (parsers.ConstrainedParser, "[" + GEMMA_CONSTRAINED + ", " + LLAMA31_JSON.replace("parameters", "arguments") + "]", "",
     [("get_weather", {"city": "Paris", "unit": "celsius"}), PARIS]),
]


@pytest.mark.parametrize("factory,output,text,calls", CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_recorded_outputs_parse_the_same_however_split(factory, output, text, calls):
    for chunks in splits(output):
        got = run(factory().configure(WEATHER), chunks)
        assert got.calls == calls, chunks
        assert got.text == text, chunks
        for mark in ("<tool_call>", "</tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "```", "<think>", '"name"'):
            assert mark not in got.text


def test_reasoning_is_separated_from_the_call():
    for chunks in splits(QWEN3_THINK):
        got = run(parsers.HermesParser().configure(WEATHER), chunks)
        assert got.reasoning == "\nThe user wants the weather; I should call get_weather.\n"


def test_name_streams_before_the_arguments_finish():
    p = parsers.HermesParser().configure(WEATHER)
    events = p.feed('<tool_call>{"name": "get_weather", "arguments": {"ci')
    assert [type(e).__name__ for e in events] == ["ToolCallStart", "ToolCallDelta"]
    assert events[0].name == "get_weather" and events[1].arguments == '{"ci'
    assert [type(e).__name__ for e in p.feed('ty": "Paris"}}</tool_call>')] == ["ToolCallDelta", "ToolCallEnd"]


def test_partial_markers_are_held_back_not_leaked():
    p = parsers.HermesParser().configure(WEATHER)
    assert [e.text for e in p.feed("Sure <tool_")] == ["Sure"]  # trailing space and the partial tag wait
    assert p.feed("ca") == []
    events = p.feed('ll>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>') + p.finish()
    assert [type(e).__name__ for e in events] == ["ToolCallStart", "ToolCallDelta", "ToolCallEnd"]


def test_text_that_only_looks_like_a_marker_is_text():
    got = run(parsers.HermesParser().configure(WEATHER), ["a <tool", " b <think", "ing> c"])
    assert got.text == "a <tool b <thinking> c" and not got.calls


def test_json_that_is_not_a_call_stays_text():
    answer = '{"name": "Bob", "age": 3}'
    for chunks in splits(answer):
        got = run(parsers.GenericParser().configure(WEATHER), chunks)
        assert got.text == answer and not got.calls


def test_plain_text_and_think_without_tools():
    for chunks in splits("<think>2+2=4</think>\n\nThe answer is 4."):
        got = run(parsers.TextParser().configure([]), chunks)
        assert (got.reasoning, got.text) == ("2+2=4", "The answer is 4.")


def test_template_opened_thinking():
    p = parsers.TextParser().configure([])
    p.open_reasoning()
    got = run(p, ["Let me think", "</think>", "Four."])
    assert (got.reasoning, got.text) == ("Let me think", "Four.")


def test_unclosed_think_is_reasoning():
    got = run(parsers.TextParser().configure([]), ["<think>still going"])
    assert got.reasoning == "still going" and got.text == ""


def test_cut_short_call_still_ends_with_valid_json():
    for cut in ('{"name": "get_weather", "arguments": {"city": "Par',
                '{"name": "get_weather", "arguments": {"city": ',
                '{"name": "get_weather", "arguments": {"tags": ["a", "b',
                '{"name": "get_weather", "arguments": {"ci',
                '{"name": "get_weather", "arguments": {"a": 1, '):
        got = run(parsers.ConstrainedParser().configure(WEATHER), [cut])
        assert len(got.calls) == 1 and got.calls[0][0] == "get_weather"
        assert isinstance(got.calls[0][1], dict)


def test_call_cut_before_its_name_is_dropped_not_text():
    got = run(parsers.HermesParser().configure(WEATHER), ['Hi <tool_call>{"na'])
    assert got.text == "Hi" and not got.calls


def test_parallel_off_keeps_only_the_first_call():
    for chunks in splits(MISTRAL_V3):
        got = run(parsers.MistralParser().configure(WEATHER, max_calls=1), chunks)
        assert got.calls == [PARIS]


def test_unmarked_call_with_unknown_name_is_text_but_marked_one_is_a_call():
    got = run(parsers.GenericParser().configure(WEATHER), ['{"name": "launch", "arguments": {}}'])
    assert not got.calls and got.text == '{"name": "launch", "arguments": {}}'
    got = run(parsers.HermesParser().configure(WEATHER), ['<tool_call>{"name": "launch", "arguments": {}}</tool_call>'])
    assert got.calls == [("launch", {})] and got.text == ""


def test_arguments_as_a_json_string_and_nested_function():
    got = run(parsers.HermesParser().configure(WEATHER),
              ['<tool_call>{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}</tool_call>'])
    assert got.calls == [ADD]
    got = run(parsers.HermesParser().configure(WEATHER),
              ['<tool_call>{"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}</tool_call>'])
    assert got.calls == [ADD]


def test_missing_arguments_are_an_empty_object():
    got = run(parsers.HermesParser().configure(WEATHER), ['<tool_call>{"name": "get_weather"}</tool_call>'])
    assert got.calls == [("get_weather", {})]


def test_text_after_a_call_is_text():
    got = run(parsers.HermesParser().configure(WEATHER), ['<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\nDone.'])
    assert got.calls == [ADD] and got.text == "Done."


@pytest.mark.parametrize("args_only", [False, True])
def test_a_closing_bracket_that_matches_no_opener_ends_the_scan_with_an_error(args_only: bool) -> None:
    """Both scanner modes track nesting one way: a ``}`` closing a ``[`` is not JSON, never a finished call."""
    from localai.tools.scanner import CallScanner

    text = '{"a": [1}' if args_only else '{"name": "f", "arguments": {"a": [1}}'
    actions, used = CallScanner(args_only=args_only).feed(text)
    assert actions[-1].kind == "error" and used == text.index("}") + 1
    assert not any(a.kind == "end" for a in actions)
