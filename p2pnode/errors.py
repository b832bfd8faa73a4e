"""Errors named by whose fault they are, as the daemon, the API and the CLI see them.

The classes live in gossip/errors.py so the cores, the contracts client and the
simulator can raise them without importing the daemon package; this module is
where the node's own code imports them from (see gossip/errors.py for what each
one means).
"""

from __future__ import annotations

from gossip.errors import LocalError, RemoteError, SonmError, UserError

__all__ = ["LocalError", "RemoteError", "SonmError", "UserError"]
