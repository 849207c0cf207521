"""Frontend: server-rendered HTML pages; owns no data, calls users and thoughts (design.md §1)."""

__version__ = "0.1.0"
