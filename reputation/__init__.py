"""Hub verification states, trust polling, local and global trust (sans-IO)."""
