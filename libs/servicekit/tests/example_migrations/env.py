from sqlalchemy import Column, Integer, MetaData, String, Table

from servicekit.migrations import run_env

metadata = MetaData()
Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("text", String(50), nullable=False),
)

run_env(metadata)
