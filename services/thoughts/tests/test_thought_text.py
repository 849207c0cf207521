"""What a thought's text may be (issue 14 item 13): at least one visible character, and at most
250 characters counted as a reader counts them (extended grapheme clusters), not code points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

THUMB = "\U0001f44d\U0001f3fd"  # a thumb and a skin tone: one character, two code points
FLAG = "\U0001f1eb\U0001f1f7"  # two regional indicators: one character
ACCENTED = "e\u0301"  # e and a combining acute accent: one character


@pytest.mark.parametrize(
    "text",
    ["\ufeff", "\u200b\u200d\u2060", "\u3164", "\u2800\u2800", " \ufeff\u200e\u202e "],
    ids=["bom", "zero-width", "hangul filler", "braille blank", "marks and spaces"],
)
async def test_a_thought_of_only_invisible_characters_is_refused(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], assert_problem: Any, text: str
) -> None:
    response = await client.post("/api/me/thoughts/", json={"text": text}, headers=auth("bruce"))
    assert_problem(response, 400, "text")


@pytest.mark.parametrize("character", [THUMB, FLAG, ACCENTED, "x"])
async def test_the_limit_counts_user_perceived_characters(
    client: httpx.AsyncClient,
    auth: Callable[[str], dict[str, str]],
    assert_problem: Any,
    character: str,
) -> None:
    longest = character * 250
    response = await client.post("/api/me/thoughts/", json={"text": longest}, headers=auth("bruce"))
    assert response.status_code == 201, response.text
    assert response.json()["text"] == longest
    stored = await client.get(f"/api/thoughts/{response.json()['id']}/")
    assert stored.json()["text"] == longest

    response = await client.post(
        "/api/me/thoughts/", json={"text": character * 251}, headers=auth("bruce")
    )
    assert_problem(response, 400, "text")
    assert "251" in response.json()["detail"]


async def test_a_few_characters_of_very_many_code_points_are_refused(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], assert_problem: Any
) -> None:
    zalgo = ("a" + "\u0301" * 9) * 101  # 101 characters, 1,010 code points
    response = await client.post("/api/me/thoughts/", json={"text": zalgo}, headers=auth("bruce"))
    assert_problem(response, 400, "text")
