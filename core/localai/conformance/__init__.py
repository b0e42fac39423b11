"""The backend conformance suite: :class:`BackendConformance` and the contract it checks.

Also reachable as ``localai.testing.BackendConformance``. Needs pytest (a plugin's test extra).
"""

from localai.conformance.contract import CONTRACT
from localai.conformance.suite import BackendConformance

__all__ = ["BackendConformance", "CONTRACT"]
