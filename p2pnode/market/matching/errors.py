"""Errors of the matching core, named by whose fault they are.

The core may not import the daemon, so it cannot use p2pnode.errors; these subclass
ValueError so that callers which already catch bad values keep working, and the
daemon maps them onto its own classes (RemoteOrderError -> RemoteError, etc.).
"""

from __future__ import annotations


class RemoteOrderError(ValueError):
    """A peer's order or cancellation that the index cannot take (the peer's fault)."""


class CallerError(ValueError):
    """The code calling the index used it wrongly, e.g. matched an ASK (our own bug)."""


class ConfigError(ValueError):
    """An index parameter is out of bounds (the operator's fault); says which and why."""
