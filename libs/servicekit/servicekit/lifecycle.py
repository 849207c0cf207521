"""Process-wide shutdown state: readiness turns false as soon as SIGTERM arrives."""

from __future__ import annotations

import threading

_shutting_down = threading.Event()


def begin_shutdown() -> None:
    _shutting_down.set()


def is_shutting_down() -> bool:
    return _shutting_down.is_set()


def reset_for_tests() -> None:
    _shutting_down.clear()
