"""Sans-IO gossipsub router, application message types and validators.

Nothing in this package may import trio, socket, time or random: the same objects
run in the daemon (driven by trio with the real clock) and in the simulator
(driven by a heap of events in virtual time). tests/test_sans_io.py enforces it.
"""

from gossip import _native

_native.activate(__name__, __path__)
