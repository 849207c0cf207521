# The pytest plugins of every test suite in the workspace, registered here and nowhere else:
# testkit.plugin (real SQLite/PostgreSQL databases, in-process apps, the span exporter; see
# libs/testkit) and devtools.pytest_plugin (the whole local system as real processes).
pytest_plugins = ["testkit.plugin", "devtools.pytest_plugin"]
