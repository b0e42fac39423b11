"""The same-answer suite: a backend that promises greedy answers independent of its prompt cache and of the
requests it serves alongside subclasses :class:`SameAnswerSuite` with its models folder, as with the conformance
suite. Needs pytest (imported by test modules only); the helpers it runs are in ``localai.testing.same_answer``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from localai.testing.processes import ServerProcess, write_models
from localai.testing.same_answer import (
    Answer,
    after_siblings,
    ask,
    conversations,
    differences,
    restarted,
    together,
    twice_in_a_row,
)


class SameAnswerSuite:
    """The twenty conversations answered one at a time on a fresh server are the reference; each check asks them
    again another way and wants every answer identical (tokens, and logprobs within 1e-6)."""

    models: ClassVar[dict[str, str]] = {}
    """YAML files by file name, written into the models folder with the default GGUF linked; the model under test
    is named ``gemma``."""

    @pytest.fixture(scope="class")
    @classmethod
    def folder(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return write_models(tmp_path_factory.mktemp("same-answer"), cls.models)

    @pytest.fixture(scope="class")
    @classmethod
    def first(cls, folder: Path) -> Iterator[ServerProcess]:
        with ServerProcess(folder) as srv:
            yield srv

    @pytest.fixture(scope="class")
    @classmethod
    def chats(cls, first: ServerProcess) -> list[list[dict]]:
        return conversations(first)

    @pytest.fixture(scope="class")
    @classmethod
    def reference(cls, first: ServerProcess, chats: list[list[dict]]) -> list[Answer]:
        return [ask(first, c) for c in chats]

    def test_the_second_of_two_in_a_row_gives_the_same_answer(self, first: ServerProcess, chats: list[list[dict]],
                                                                reference: list[Answer]) -> None:
        assert differences(reference, twice_in_a_row(first, chats)) == []

    def test_a_sibling_sharing_the_prefix_first_gives_the_same_answer(self, first: ServerProcess, chats: list[list[dict]],
                                                                      reference: list[Answer]) -> None:
        assert differences(reference, after_siblings(first, chats)) == []

    def test_eight_concurrent_requests_streamed_or_not_give_their_solo_answers(
            self, first: ServerProcess, chats: list[list[dict]], reference: list[Answer]) -> None:
        assert differences(reference, together(first, chats)) == []

    def test_a_restarted_server_gives_the_same_answers_in_another_order(self, folder: Path, chats: list[list[dict]],
                                                                        reference: list[Answer]) -> None:
        assert differences(reference, restarted(folder, chats)) == []
