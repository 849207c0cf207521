"""Feature flags from a file through the OpenFeature SDK: the targeting rules, stable buckets,
defaults, and reloading a changed file (a ConfigMap update) without a restart."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from servicekit.flags import BadFlagFile, FileFlagProvider, Flags, bucket

USERS = [f"user{n:05d}" for n in range(10_000)]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def flags_from(path: Path, reload_seconds: float = 5.0) -> Flags:
    return Flags(FileFlagProvider(path, reload_seconds=reload_seconds), service="test")


def test_on_for_everybody_for_listed_users_and_off(tmp_path: Path) -> None:
    flags = flags_from(
        write(
            tmp_path / "flags.yaml",
            """
flags:
  everybody: {enabled: true}
  invited: {users: ["alice", "Mary O'Neil"]}
  nobody: {enabled: false}
""",
        )
    )
    assert flags.enabled("everybody", user="zed", default=False)
    assert flags.enabled("everybody", user=None, default=False)
    assert flags.enabled("invited", user="Mary O'Neil", default=False)
    assert not flags.enabled("invited", user="mary o'neil", default=False)  # exact names
    assert not flags.enabled("invited", user=None, default=True)  # no user: only `enabled`
    assert not flags.enabled("nobody", user="alice", default=True)


def test_a_flag_missing_from_the_file_or_no_file_answers_the_default(tmp_path: Path) -> None:
    flags = flags_from(write(tmp_path / "flags.yaml", "flags: {}\n"))
    assert flags.enabled("signup", user="alice", default=True)
    assert not flags.enabled("signup", user="alice", default=False)
    without = Flags.from_file(None, service="test")
    assert without.enabled("signup", user="alice", default=True)
    assert not without.enabled("signup", user="alice", default=False)


def test_percentage_reaches_that_share_stably_and_only_grows(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"  # JSON is read as well
    write(path, json.dumps({"flags": {"new-ui": {"percentage": 10}}}))
    flags = flags_from(path)
    at_10 = {user for user in USERS if flags.enabled("new-ui", user=user, default=False)}
    assert 850 < len(at_10) < 1150  # 10 % of 10,000, give or take three standard deviations
    # The same users on another server (a fresh provider) and on every request.
    again = flags_from(path)
    assert {user for user in USERS if again.enabled("new-ui", user=user, default=False)} == at_10
    write(path, json.dumps({"flags": {"new-ui": {"percentage": 20}}}))
    grown = flags_from(path)
    at_20 = {user for user in USERS if grown.enabled("new-ui", user=user, default=False)}
    assert at_10 < at_20
    assert 1800 < len(at_20) < 2200


def test_two_flags_at_the_same_percentage_reach_different_users() -> None:
    first = {user for user in USERS if bucket("one", user) < 10}
    second = {user for user in USERS if bucket("two", user) < 10}
    assert len(first & second) < 200  # independent: about 1 % of users, not 10 %


def test_listed_users_come_on_top_of_the_percentage(tmp_path: Path) -> None:
    outside = next(user for user in USERS if bucket("beta", user) >= 50)
    flags = flags_from(
        write(tmp_path / "f.yaml", f"flags:\n  beta: {{percentage: 50, users: [{outside}]}}\n")
    )
    assert flags.enabled("beta", user=outside, default=False)
    inside = next(user for user in USERS if bucket("beta", user) < 50)
    assert flags.enabled("beta", user=inside, default=False)


@pytest.mark.parametrize(
    "text",
    [
        "flags: {signup: {enabled: maybe}}",
        "flags: {signup: {percentage: 150}}",
        "flags: {signup: {enabld: true}}",  # a typo is refused, not ignored
        "flags: [signup]",
        "flags: {signup: {enabled: true}",
    ],
)
def test_a_bad_file_is_refused_with_the_reason(tmp_path: Path, text: str) -> None:
    with pytest.raises(BadFlagFile, match=r"flags\.yaml"):
        FileFlagProvider(write(tmp_path / "flags.yaml", text))


def test_a_changed_file_is_read_again_after_the_reload_interval(tmp_path: Path) -> None:
    now = [0.0]
    path = write(tmp_path / "flags.yaml", "flags: {signup: {enabled: false}}\n")
    provider = FileFlagProvider(path, reload_seconds=5, clock=lambda: now[0])
    flags = Flags(provider, service="test")
    write(path, "flags: {signup: {enabled: true}}\n")
    os.utime(path, ns=(1, 10**18))  # a new mtime, whatever the file system's resolution
    now[0] = 4.0
    assert not flags.enabled("signup", user="alice", default=False)  # not yet looked at
    now[0] = 5.0
    assert flags.enabled("signup", user="alice", default=False)
    # Broken later (a bad ConfigMap edit): the last good flags stay in force.
    write(path, "flags: {signup: {enabled: maybe}}\n")
    os.utime(path, ns=(1, 2 * 10**18))
    now[0] = 11.0
    assert flags.enabled("signup", user="alice", default=False)


def test_apps_in_one_process_keep_their_own_flags(tmp_path: Path) -> None:
    on = flags_from(write(tmp_path / "on.yaml", "flags: {x: {enabled: true}}\n"))
    off = flags_from(write(tmp_path / "off.yaml", "flags: {x: {enabled: false}}\n"))
    assert on.enabled("x", user=None, default=False)
    assert not off.enabled("x", user=None, default=True)
