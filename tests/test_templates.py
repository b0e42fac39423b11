"""Chat template choice and rendering."""

from __future__ import annotations

from localai.chat import templates
from localai.types import Message, ToolCall


def test_precedence_yaml_then_model_then_builtin() -> None:
    assert templates.choose_template("Y", "M", "gemma3") == ("Y", "yaml")
    assert templates.choose_template(None, "M", "gemma3") == ("M", "model")
    assert templates.choose_template(None, None, "gemma3")[1] == "builtin:gemma3"
    assert templates.choose_template(None, None, "somethingelse")[1] == "builtin:chatml"


def test_gemma_turn_format_with_system_folded_into_first_user_turn() -> None:
    source, _ = templates.choose_template(None, None, "gemma3")
    text = templates.render(source, [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Hi"),
        Message(role="assistant", content="Hello!"),
        Message(role="user", content="Bye"),
    ], bos_token="<bos>")
    assert text == ("<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
                    "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
    assert "[INST]" not in text


def test_hf_style_template_gets_messages_tools_and_helpers() -> None:
    source = ("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}"
              "{% if m.tool_calls %}{{ m.tool_calls[0].function.arguments.city }}{% endif %}{% endfor %}"
              "{% if tools %}T={{ tools[0].function.name }}{% endif %}{% if add_generation_prompt %}[assistant]{% endif %}")
    from localai.types import ToolSpec

    text = templates.render(source, [
        Message(role="user", content="weather?"),
        Message(role="assistant", content="", tool_calls=[ToolCall(id="c1", name="w", arguments='{"city": "Paris"}')]),
    ], bos_token="<s>", tools=[ToolSpec(name="w")])
    assert text == "[user]weather?[assistant]ParisT=w[assistant]"  # leading BOS stripped: the tokenizer adds it


def test_template_raise_exception_is_an_error() -> None:
    import jinja2
    import pytest

    with pytest.raises(jinja2.TemplateError, match="no system"):
        templates.render("{{ raise_exception('no system') }}", [Message(role="user", content="x")])


def test_completion_template() -> None:
    assert templates.render_completion("Q: {{ prompt }}\nA:", "2+2?") == "Q: 2+2?\nA:"
