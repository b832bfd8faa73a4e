"""Discrete-event network simulation running the real protocol cores."""
