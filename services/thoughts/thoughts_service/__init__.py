"""The Thoughts Backend: post, list, search and delete thoughts (design.md §1-2)."""

__version__ = "0.1.0"
