"""Tools shared by the end-to-end tests: small schemas keep constrained generations short."""

from __future__ import annotations

import json

import jsonschema

WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"],
                  "additionalProperties": False}
ADD_PARAMS = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"],
              "additionalProperties": False}
SCHEMAS = {"get_weather": WEATHER_PARAMS, "add": ADD_PARAMS}
DESCRIPTIONS = {"get_weather": "Get the current weather in a city", "add": "Add two integers"}
CITY_ANSWER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}, "country": {"type": "string", "maxLength": 40}},
               "required": ["city", "country"], "additionalProperties": False}


def check_call(name: str, arguments: str | dict) -> dict:
    """The call names an offered tool and its arguments are valid against that tool's schema."""
    assert name in SCHEMAS, name
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    jsonschema.validate(args, SCHEMAS[name])
    return args
