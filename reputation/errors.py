"""Errors of the reputation core, named by whose fault they are.

The core does not import the daemon, so it has its own small hierarchy; the
daemon maps `RemoteTrustError` onto its RemoteError handling (log, count,
penalise the peer, keep running) and `TrustParamsError` onto UserError (the
operator's configuration is wrong).
"""

from __future__ import annotations


class ReputationError(Exception):
    """Base of every error the reputation core raises on purpose."""


class RemoteTrustError(ReputationError):
    """A peer sent something wrong: the peer's fault, never ours."""


class TrustMessageDecodeError(RemoteTrustError):
    """Bytes from a peer are not a well-formed trust message; `field` names what was wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid trust message: {field}: {problem}")
        self.field = field
        self.problem = problem


class TrustSignatureError(RemoteTrustError):
    """The signature does not recover to the address the message names."""


class PeerRateLimited(RemoteTrustError):
    """The peer sent more questions or answers than its per-window allowance."""


class UnsolicitedAnswer(RemoteTrustError):
    """An answer to a question this node did not ask, or asked too long ago."""


class TrustParamsError(ReputationError):
    """A parameter is out of bounds: the operator's (configuration's) fault."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class LocalTransitionError(ReputationError):
    """Our own code asked for a status change the state table does not allow (a bug here)."""
