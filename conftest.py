# Shared pytest fixtures for every lib and service: real SQLite/PostgreSQL databases, free ports,
# service processes. See libs/servicekit/servicekit/testing.py.
pytest_plugins = ["servicekit.testing"]
