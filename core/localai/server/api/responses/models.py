"""The ``POST /v1/responses`` request body (Open Responses ``CreateResponseBody``).

Unknown fields are accepted (clients send newer fields than we know); the ones the response
object has are echoed back. Input items are validated one by one in :mod:`.items` so errors name
the offending item.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from localai.types import (
    JsonLimits,
    MinP,
    Penalty,
    RepeatPenalty,
    Temperature,
    TopK,
    TopP,
)


class FunctionToolParam(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class SpecificFunctionParam(BaseModel):
    type: Literal["function"]
    name: str


class AllowedToolRef(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    name: str


class AllowedToolsParam(BaseModel):
    type: Literal["allowed_tools"]
    tools: list[AllowedToolRef] = Field(min_length=1)
    mode: Literal["auto", "required", "none"] = "auto"


class TextFormatText(BaseModel):
    type: Literal["text"]


class TextFormatJsonObject(BaseModel):
    type: Literal["json_object"]


class TextFormatJsonSchema(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class TextParam(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: TextFormatText | TextFormatJsonObject | TextFormatJsonSchema = Field(
        default_factory=lambda: TextFormatText(type="text"), discriminator="type")
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningParam(BaseModel):
    model_config = ConfigDict(extra="allow")

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str | None = None
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    tools: list[FunctionToolParam] | None = None
    tool_choice: Literal["auto", "none", "required"] | SpecificFunctionParam | AllowedToolsParam | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=1)
    temperature: Temperature | None = None
    top_p: TopP | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    text: TextParam | None = None
    reasoning: ReasoningParam | None = None
    previous_response_id: str | None = None
    store: bool | None = True
    background: bool | None = False
    metadata: dict[str, str] | None = None
    stream: bool | None = False
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    user: str | None = None
    # Sampling extensions LocalAI clients send alongside the spec's fields.
    top_k: TopK | None = None
    min_p: MinP | None = None
    repeat_penalty: RepeatPenalty | None = None
    seed: int | None = None
    json_limits: JsonLimits | None = None  # localai's extension: how JSON output may be written

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        """The spec's limits: at most 16 pairs, keys up to 64 and values up to 512 characters."""
        if v is None:
            return v
        if len(v) > 16:
            raise ValueError("at most 16 key-value pairs are allowed")
        for key, value in v.items():
            if len(key) > 64:
                raise ValueError(f"key {key[:20]!r}... is longer than 64 characters")
            if len(value) > 512:
                raise ValueError(f"value of {key!r} is longer than 512 characters")
        return v

    @property
    def stored(self) -> bool:
        return self.store is not False

    def include_logprobs(self) -> bool:
        return "message.output_text.logprobs" in (self.include or [])
