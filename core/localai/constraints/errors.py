"""Errors of the constraint engine; both are ``ValueError`` so a worker reports them as a 400."""

from __future__ import annotations


class ConstraintRefused(ValueError):
    """The constraint cannot be enforced exactly (unsupported keyword, bad regex, too expensive to compile).

    ``path`` is where, in dotted request-parameter form (``response_format.json_schema.schema.properties.x.maximum``);
    ``code`` is ``unsupported_schema`` or ``schema_too_complex`` or ``invalid_schema``.
    """

    def __init__(self, message: str, path: str | None = None, code: str = "unsupported_schema") -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.code = code


class ConstraintViolation(ValueError):
    """A token the constraint does not allow reached the matcher (e.g. every allowed token was biased to -inf)."""
