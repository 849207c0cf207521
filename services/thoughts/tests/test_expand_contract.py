"""Expand/contract: the SQL the previous release of the thoughts service sent still runs on a
database migrated to this head (testkit.release_statements, docs/migrations.md).

`release_statements/<dialect>.json` holds what the release sent while it served the workload
below, hot paths (the driver pool) included. To record the current release:

    RECORD_RELEASE_STATEMENTS=1 .venv/bin/pytest -n 0 -p no:randomly \\
        services/thoughts/tests/test_expand_contract.py -k record
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from testkit.release_statements import (
    ReleaseRecordings,
    Statement,
    StatementRecorder,
    record_workload,
)
from thoughts_service import __version__
from thoughts_service.main import MIGRATIONS_DIR, create_app
from thoughts_service.settings import ThoughtsSettings

RELEASE = ReleaseRecordings(
    Path(__file__).parent / "release_statements", MIGRATIONS_DIR, __version__
)


async def workload(
    make_settings: Callable[..., ThoughtsSettings], auth: Callable[[str], dict[str, str]]
) -> list[Statement]:
    """Posting, every list (mine, all, both orders, a next page), every kind of search (by
    trigrams, one or two characters), one thought, deleting one's own and as an admin, and the
    whole list of the book's clients (LEGACY_COMPATIBILITY)."""

    async def steps(client: httpx.AsyncClient) -> None:
        ids = []
        for text in ("First thought about zyzzyva", "Second one", "Third, with ß"):
            posted = await client.post(
                "/api/me/thoughts/", json={"text": text}, headers=auth("bruce")
            )
            assert posted.status_code == 201, posted.text
            ids.append(posted.json()["id"])
        mine = await client.get("/api/me/thoughts/", headers=auth("bruce"))
        assert mine.status_code == 200
        pages: tuple[dict[str, str | int], ...] = (
            {"limit": 1},
            {"limit": 1, "order": "desc"},
            {"search": "zyzzyva"},
            {"search": "SS", "order": "desc"},
            {"search": "o"},
        )
        for params in pages:
            page = await client.get("/api/thoughts/", params=params)
            assert page.status_code == 200, page.text
            if "next" in page.links:
                assert (await client.get(page.links["next"]["url"])).status_code == 200
        assert (await client.get(f"/api/thoughts/{ids[0]}/")).status_code == 200
        own = await client.delete(f"/api/me/thoughts/{ids[1]}/", headers=auth("bruce"))
        assert own.status_code == 204, own.text
        assert (await client.delete(f"/admin/thoughts/{ids[2]}/")).status_code == 204
        every = await client.get("/api/me/thoughts/", headers=auth("bruce"))  # no limit, no cursor
        assert every.status_code == 200

    # The hot paths run on the driver pool: the recorder is given to the database at creation.
    recorder = StatementRecorder()
    app = create_app(
        make_settings(legacy_compatibility=True), driver_observer=recorder.observe_driver
    )
    return await record_workload(app, steps, recorder)


if os.environ.get("RECORD_RELEASE_STATEMENTS"):

    async def test_record_release_statements(
        make_settings: Callable[..., ThoughtsSettings],
        auth: Callable[[str], dict[str, str]],
        db_backend: str,
    ) -> None:
        RELEASE.save(db_backend, await workload(make_settings, auth))


async def test_previous_release_statements_run_on_this_schema(
    database_url: str, db_backend: str
) -> None:
    await RELEASE.check(db_backend, database_url, at_least=12)


@pytest.mark.parametrize(
    ("change", "breaks_on"),
    [
        ("ALTER TABLE thoughts RENAME COLUMN search_text TO search_key", "search_text"),
        ("ALTER TABLE thoughts ADD COLUMN edited BOOLEAN NOT NULL DEFAULT false", None),
    ],
)
async def test_a_contracting_change_fails_the_replay(
    database_url: str, db_backend: str, change: str, breaks_on: str | None
) -> None:
    """The check can fail: a rename (contract) breaks the previous release; an added column with a
    default (expand) does not."""
    # SQLite cannot rename a column its FTS triggers name: they go first, as in a migration.
    kinds = ("after_insert", "after_delete", "after_update")
    triggers = [f"DROP TRIGGER thoughts_fts_{kind}" for kind in kinds]
    first = triggers if db_backend == "sqlite" and breaks_on else []
    await RELEASE.check_change(db_backend, database_url, [*first, change], breaks_on=breaks_on)


async def test_a_recording_needs_the_recorder_given_to_the_database_at_its_creation(
    make_settings: Callable[..., ThoughtsSettings],
) -> None:
    """Else the statements of the hot paths (the driver pool) would be missing, unnoticed."""

    async def steps(client: httpx.AsyncClient) -> None:
        raise AssertionError("the workload must not run")

    with pytest.raises(ValueError, match="driver_observer"):
        await record_workload(create_app(make_settings()), steps)
