"""Discrete-event network simulation running the real protocol cores."""

from gossip import _native

_native.activate(__name__, __path__)
