"""Users Backend: owns accounts, signs tokens, publishes the public keys (design.md §1)."""

__version__ = "0.1.0"
