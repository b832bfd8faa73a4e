"""Errors named by whose fault they are.

UserError: the operator gave us something wrong (config, password, CLI args); the
CLI prints one line and exits 2. RemoteError: a peer or an outside service sent
something wrong; the node logs, counts, penalises, and keeps running. LocalError:
our own environment failed (disk, engine not reachable); reported clearly.
"""

from __future__ import annotations


class SonmError(Exception):
    """Base of every error this project raises on purpose."""


class UserError(SonmError):
    """The operator's input is wrong. The message says which input and what is allowed."""


class RemoteError(SonmError):
    """A peer or an outside service sent something wrong."""


class LocalError(SonmError):
    """This machine's environment failed (disk, a local service)."""
