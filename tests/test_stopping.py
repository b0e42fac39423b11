"""Stop strings and incremental UTF-8 for token-by-token backends."""

from __future__ import annotations

import pytest
from localai.stopping import StopMatcher, Utf8Stream


def run(stops: list[str], pieces: list[str]) -> tuple[str, str | None]:
    m = StopMatcher(stops)
    out = []
    for p in pieces:
        text, hit = m.feed(p)
        out.append(text)
        if hit:
            return "".join(out), hit
    return "".join(out) + m.flush(), None


@pytest.mark.parametrize("pieces", [["Hello END world"], ["Hel", "lo E", "N", "D world"], list("Hello END world")])
def test_stop_string_split_anywhere_is_cut(pieces: list[str]) -> None:
    assert run(["END"], pieces) == ("Hello ", "END")


def test_partial_match_is_held_then_released() -> None:
    m = StopMatcher(["STOP"])
    assert m.feed("abc ST") == ("abc ", None)
    assert m.feed("ART") == ("START", None)


def test_earliest_of_several_stops_wins() -> None:
    assert run(["world", "lo"], ["Hello world"]) == ("Hel", "lo")


def test_no_stops_passes_through() -> None:
    assert run([], ["a", "b"]) == ("ab", None)


def test_utf8_never_splits_a_character() -> None:
    data = "héllo €".encode()
    u = Utf8Stream()
    out = [u.feed(data[i:i + 1]) for i in range(len(data))]
    assert "".join(out) + u.flush() == "héllo €"
    assert all("\ufffd" not in piece for piece in out)
