"""`devtools gateway weights`: the per-server HAProxy weights that give each group its share.

The commands themselves run against real HAProxy in tests/test_gateway_migration.py."""

from __future__ import annotations

import pytest

from devtools.__main__ import main
from devtools.gateway import GatewayError, weights_for

SERVERS = ["new-1", "new-2", "legacy-1"]


@pytest.mark.parametrize(
    ("split", "weights"),
    [
        ({"legacy": 100, "new": 0}, {"legacy-1": 1, "new-1": 0, "new-2": 0}),
        ({"legacy": 95, "new": 5}, {"legacy-1": 38, "new-1": 1, "new-2": 1}),
        ({"legacy": 67, "new": 33}, {"legacy-1": 134, "new-1": 33, "new-2": 33}),
        ({"legacy": 50, "new": 50}, {"legacy-1": 2, "new-1": 1, "new-2": 1}),
        ({"legacy": 0, "new": 100}, {"legacy-1": 0, "new-1": 1, "new-2": 1}),
        ({"new-1": 100}, {"legacy-1": 0, "new-1": 1, "new-2": 0}),
    ],
)
def test_each_group_gets_exactly_its_share(split: dict[str, int], weights: dict[str, int]) -> None:
    found = weights_for(SERVERS, split)

    assert found == weights
    total = sum(found.values())
    for group, percent in split.items():
        share = sum(w for name, w in found.items() if name.startswith(group))
        assert 100 * share / total == percent


def test_weights_beyond_haproxys_range_are_scaled_to_it() -> None:
    names = ["a-1", "a-2", "a-3", "b-1", "b-2"]

    found = weights_for(names, {"a": 1, "b": 99})

    assert max(found.values()) <= 256
    assert found["a-1"] >= 1
    assert round(100 * (found["b-1"] + found["b-2"]) / sum(found.values())) == 99


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"legacy": 90, "new": 5}, "add up to 100"),
        ({"old": 50, "new": 50}, "'old' matches no server"),
        ({"new": 50, "new-1": 50}, "two groups"),
    ],
)
def test_a_bad_split_is_refused(split: dict[str, int], message: str) -> None:
    with pytest.raises(GatewayError, match=message):
        weights_for(SERVERS, split)


def test_the_command_says_what_is_wrong_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["gateway", "--runtime", "/nonexistent/haproxy.sock", "status"])

    assert code == 1
    assert "no runtime API at /nonexistent/haproxy.sock" in capsys.readouterr().err
