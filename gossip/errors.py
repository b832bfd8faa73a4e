"""Errors named by whose fault they are: the base classes every package raises.

UserError: the operator gave us something wrong (config, password, CLI args); the
CLI prints one line and exits 2. RemoteError: a peer or an outside service sent
something wrong; the node logs, counts, penalises, and keeps running. LocalError:
our own environment failed (disk, engine not reachable); reported clearly.

Why here: the protocol cores (gossip/, reputation/, the matching core), the
contracts client and the simulator must not import the daemon package, yet they
raise the same errors the daemon reports. gossip/ is the bottom layer that every
other package already builds on (message types, codec, EIP-712), and this module
imports nothing, so it is the neutral home; p2pnode.errors re-exports these
classes for the daemon, the API and the CLI.
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
