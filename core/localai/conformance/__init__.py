"""Moved to :mod:`localai.testing.conformance`; this name keeps plugins written against it working."""

from localai.testing.conformance import CONTRACT, BackendConformance

__all__ = ["BackendConformance", "CONTRACT"]
