"""Moved to :mod:`localai.testing.conformance.pytest_plugin`: the pytest11 entry point of installs made before the
move still names this module."""

from localai.testing.conformance.pytest_plugin import *  # noqa: F401,F403
