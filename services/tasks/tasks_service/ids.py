"""Task ids shaped like the MongoDB ObjectIds the tutorial's app handed out: 24 lowercase hex.

An ObjectId is 12 bytes, the first 4 the creation time in seconds (big-endian). Ours are the
same 4 bytes followed by 8 random ones, so that a client (or a tool) that reads an ObjectId's
time still reads the right one, and ids cannot be guessed or enumerated. Ids are never reused.
"""

from __future__ import annotations

import re
import secrets
import time

ID_LENGTH = 24
ID_PATTERN = r"^[0-9a-fA-F]{24}$"
_ID = re.compile(ID_PATTERN)


def new_task_id() -> str:
    seconds = int(time.time()) & 0xFFFFFFFF
    return seconds.to_bytes(4, "big").hex() + secrets.token_hex(8)


def normalize_task_id(value: str) -> str:
    """The id in its stored (lowercase) form; ValueError naming the expected shape.

    Upper case is accepted because the tutorial's `ObjectId(id)` accepted it.
    """
    if not _ID.fullmatch(value):
        raise ValueError(f"a task id is {ID_LENGTH} hexadecimal characters (an ObjectId)")
    return value.lower()
