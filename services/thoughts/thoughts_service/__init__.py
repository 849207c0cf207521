"""The Thoughts Backend: post, list, search and delete thoughts (docs/architecture.md)."""

__version__ = "0.1.0"
