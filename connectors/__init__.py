"""Connectors: one module per backend behind the contract in ``connectors.base``."""
