"""The Makefile declares no phony target it lacks a rule for: `make NAME` for such a name answers
"Nothing to be done" and exits 0, as if it had done what the name says (`make migrate` did that,
and migrated nothing)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_phony_target_has_a_rule() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = {
        name for names in re.findall(r"^\.PHONY:(.*)$", makefile, re.M) for name in names.split()
    }
    # A rule is `name:` at the start of a line; `NAME := value` is an assignment.
    rules = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, re.M))
    assert phony, "no .PHONY line found"
    assert phony - rules == set()
