"""Vyper contracts, their compilation and deployment, and a typed client over web3."""
