"""Users Backend: owns accounts, signs tokens, publishes the public keys (docs/architecture.md)."""

__version__ = "0.1.0"
