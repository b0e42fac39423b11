"""Tool calling and structured output: one engine shared by every protocol adapter.

:func:`plan` decides, for one request, how tools reach the prompt, which decoding constraint
the backend must enforce, and which parser turns the model's raw text back into events.
"""

from localai.tools.parsers import ToolCallParser
from localai.tools.planning import OutputParser, ToolPlan, plan
from localai.tools.registry import ParserRegistry

__all__ = ["OutputParser", "ParserRegistry", "ToolCallParser", "ToolPlan", "plan"]
