"""Frontend: server-rendered HTML pages; owns no data, calls users and thoughts
(docs/architecture.md)."""

__version__ = "0.1.0"
