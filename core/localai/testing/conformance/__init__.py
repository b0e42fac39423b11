"""The backend conformance suite: :class:`BackendConformance` and the contract it checks.

Also reachable as ``localai.testing.BackendConformance`` (and, for plugins written against it,
``localai.conformance``). Needs pytest (a plugin's test extra).
"""

from localai.testing.conformance.contract import CONTRACT
from localai.testing.conformance.suite import BackendConformance

__all__ = ["BackendConformance", "CONTRACT"]
