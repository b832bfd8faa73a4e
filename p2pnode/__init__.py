"""The sonm-p2p node: libp2p host, daemon, config, storage, API and CLI."""

__version__ = "0.1.0"
