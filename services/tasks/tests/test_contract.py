"""The tutorial's contract, its content-type quirk, bad input, pages and ownership."""

from __future__ import annotations

import re
import socket

import pytest

BAD_BODIES = [
    (b"", "body"),
    (b"{not json", "JSON"),
    (b'["task"]', "object"),
    (b"{}", "task"),
    (b'{"task": 5}', "task"),
    (b'{"task": null}', "task"),
    (b'{"task": ""}', "task"),
    (b'{"task": "   "}', "task"),
    (('{"task": "' + "x" * 501 + '"}').encode(), "500"),
    # Latin-1, not UTF-8: orjson's own words were "surrogates not allowed".
    ('{"task": "café"}'.encode("latin-1"), "it is not UTF-8"),
]


async def tasks(client, **kwargs):
    response = await client.get("/tasks", **kwargs)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_every_row_of_the_contract(client):
    welcome = await client.get("/")
    assert welcome.json() == {
        "message": f"Welcome to Tasks app! I am running inside {socket.gethostname()} pod!"
    }
    assert await tasks(client) == []
    for text in ("first", "second"):
        # curl -d sends application/x-www-form-urlencoded; the tutorial read it as JSON anyway.
        saved = await client.post(
            "/task",
            content=f'{{"task": "{text}"}}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert saved.status_code == 200
        assert saved.json() == {"message": "Task saved successfully!"}
    listed = await tasks(client)
    assert [t["task"] for t in listed] == ["first", "second"]  # oldest first
    assert all(re.fullmatch(r"[0-9a-f]{24}", t["id"]) for t in listed)
    first = listed[0]["id"]
    put = await client.put(f"/task/{first}", content=b'{"task": "changed"}')
    assert put.json() == {"message": "Task updated successfully!"}
    assert (await tasks(client))[0] == {"id": first, "task": "changed"}
    missing = "0" * 24
    assert (await client.put(f"/task/{missing}", json={"task": "x"})).json() == {
        "message": "No Task found!"
    }
    assert (await client.delete(f"/task/{first}")).json() == {
        "message": "Task deleted successfully!"
    }
    assert (await client.delete(f"/task/{first}")).json() == {"message": "No Task found!"}
    assert (await client.post("/tasks/delete")).json() == {"message": "All Tasks deleted!"}
    assert await tasks(client) == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json", "x/y"])
async def test_a_json_body_is_read_whatever_its_content_type(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    saved = await client.post("/task", content=b'{"task": "quirk"}', headers=headers)
    assert saved.status_code == 200, saved.text
    assert [t["task"] for t in await tasks(client)] == ["quirk"]


@pytest.mark.parametrize(("body", "named"), BAD_BODIES)
async def test_bad_input_is_a_400_and_nothing_changes(client, body, named):
    await client.post("/task", json={"task": "kept"})
    before = await tasks(client)
    task_id = before[0]["id"]
    for method, url in (("POST", "/task"), ("PUT", f"/task/{task_id}")):
        response = await client.request(method, url, content=body)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert named in response.json()["detail"]
    assert await tasks(client) == before


@pytest.mark.parametrize("bad_id", ["123", "z" * 24, "0" * 25, "0" * 23 + "g"])
async def test_a_malformed_id_is_a_400_and_nothing_changes(client, bad_id):
    await client.post("/task", json={"task": "kept"})
    before = await tasks(client)
    for response in (
        await client.put(f"/task/{bad_id}", json={"task": "x"}),
        await client.delete(f"/task/{bad_id}"),
    ):
        assert response.status_code == 400, response.text
        assert "24 hexadecimal" in response.json()["detail"]
    assert await tasks(client) == before


async def test_250_tasks_page_without_loss_or_repeat(client):
    for n in range(250):
        await client.post("/task", json={"task": f"task {n}"})
    seen: list[str] = []
    url: str | None = "/tasks?limit=1000"
    pages = 0
    while url:
        response = await client.get(url)
        page = response.json()["data"]
        assert len(page) <= 100
        seen += [t["task"] for t in page]
        pages += 1
        link = response.headers.get("link")
        following = re.match(r'<([^>]+)>; rel="next"', link) if link else None
        url = following.group(1) if following else None
    assert seen == [f"task {n}" for n in range(250)]
    assert pages == 3


async def test_a_token_owns_its_list_and_no_token_is_the_shared_list(client, auth):
    await client.post("/task", json={"task": "shared"})
    await client.post("/task", json={"task": "bruce's"}, headers=auth("bruce"))
    assert [t["task"] for t in await tasks(client)] == ["shared"]
    mine = await tasks(client, headers=auth("bruce"))
    assert [t["task"] for t in mine] == ["bruce's"]
    assert await tasks(client, headers=auth("stephen")) == []
    # Someone else's id is "No Task found!" and changes nothing.
    put = await client.put(f"/task/{mine[0]['id']}", json={"task": "x"}, headers=auth("stephen"))
    assert put.json() == {"message": "No Task found!"}
    assert (await client.delete(f"/task/{mine[0]['id']}")).json() == {"message": "No Task found!"}
    await client.post("/tasks/delete", headers=auth("stephen"))
    assert await tasks(client, headers=auth("bruce")) == mine
    bad = await client.get("/tasks", headers={"Authorization": "Bearer not.a.token"})
    assert bad.status_code == 401


async def test_the_token_can_be_required(make_client, auth):
    async for client in make_client(tasks_require_token=True):
        assert (await client.get("/tasks")).status_code == 401
        assert (await client.post("/task", json={"task": "x"})).status_code == 401
        assert (await client.get("/tasks", headers=auth("bruce"))).status_code == 200
        schema = (await client.get("/openapi.json")).json()
        assert schema["paths"]["/tasks"]["get"]["security"] == [{"MyThoughtsBearer": []}]
