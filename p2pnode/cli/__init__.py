"""sonm-p2p."""
