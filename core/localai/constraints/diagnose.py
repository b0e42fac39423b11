"""Where an unfinished JSON answer stopped: the path of the value being written (``$.items[2].price``).

When a constrained answer runs into ``max_tokens``, the log names the field that ran away, so a user can see
which part of the schema needs a bound (or a larger ``max_tokens``) instead of guessing from a cut-off text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Cut:
    path: str  # JSONPath-style: ``$``, ``$.name``, ``$.items[3]``
    inside: str  # "number", "string", "key", "object", "array", "literal" or "nothing" (not started)


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def cut_at(text: str) -> Cut:
    """The innermost value ``text`` (a JSON prefix) was writing when it stopped."""
    # each frame: [kind, path of the container, current key or index, expecting a key?]
    stack: list[list] = []
    i, n = 0, len(text)
    inside = "nothing"
    current = "$"

    def member_path() -> str:
        if not stack:
            return "$"
        kind, path, at, _ = stack[-1]
        return _key_path(path, at) if kind == "object" else f"{path}[{at}]"

    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            buf = []
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                if j < n:
                    buf.append(text[j])
                j += 1
            closed = j < n
            if stack and stack[-1][0] == "object" and stack[-1][3]:
                stack[-1][2] = "".join(buf)
                if not closed:
                    return Cut(stack[-1][1], "key")
                stack[-1][3] = False
            else:
                current = member_path()
                if not closed:
                    return Cut(current, "string")
                inside = "string"
            i = j + 1
            continue
        if c in "{[":
            current = member_path()
            stack.append(["object", current, "", True] if c == "{" else ["array", current, 0, False])
            inside = "object" if c == "{" else "array"
        elif c in "}]":
            if stack:
                current = stack.pop()[1]
            inside = "nothing" if not stack else stack[-1][0]
        elif c == ",":
            if stack:
                if stack[-1][0] == "object":
                    stack[-1][3] = True
                else:
                    stack[-1][2] += 1
            inside = "nothing"
        elif c == ":":
            inside = "nothing"
        elif c in "-0123456789":
            current = member_path()
            j = i
            while j < n and text[j] in "-+.eE0123456789":
                j += 1
            if j == n:
                return Cut(current, "number")
            i = j
            continue
        elif c.isalpha():
            current = member_path()
            j = i
            while j < n and text[j].isalpha():
                j += 1
            if j == n:
                return Cut(current, "literal")
            i = j
            continue
        i += 1
    if stack:
        kind, path, at, expecting_key = stack[-1]
        if kind == "object" and not expecting_key and at:
            return Cut(_key_path(path, at), "nothing")
        return Cut(path, kind)
    return Cut(current if inside != "nothing" else "$", inside)
