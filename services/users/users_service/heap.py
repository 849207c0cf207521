"""argon2's memory goes back to the system after every hash (glibc's malloc, on Linux).

A password check allocates its argon2id block (ARGON2_MEMORY_KIB, 19 MiB by default) with malloc
and frees it when the hash is done. glibc serves a block that large with mmap, and the free
unmaps it; but that first free also raises glibc's mmap threshold to the block's size (its
"dynamic threshold", meant for programs that allocate and free large buffers over and over), so
every later block comes from the heap ("arena") of the thread that hashes, and stays resident
there after the free: glibc gives an arena's top back only beyond twice the threshold. With one
check thread per core (users_service.check_queue), each users worker kept 2 x 19 MiB: 161-162 MB
of RSS after the benchmark against 121-124 MB at rest (bench/README.md, "Logins").
`malloc_trim(0)` does not help: it releases free chunks inside an arena, not a thread arena's
top.

Pinning the threshold (mallopt M_MMAP_THRESHOLD) turns the dynamic rise off, so every block is
mmapped for its hash and unmapped after it. The price is faulting the block in again each time:
on the benchmark machine (a VM, 4 KiB pages) ~14 ms of system CPU per login on top of ~23 ms,
~2-3 ms when the block is backed by transparent huge pages. glibc asks for huge pages for its
mmapped blocks only when told so at start-up (GLIBC_TUNABLES=glibc.malloc.hugetlb=1, which the
users image and devtools' local stack set); without it the memory bound holds all the same, at
the higher cost. ARGON2_RELEASE_MEMORY=false keeps glibc's default (a worker then holds one block
per check thread, and spends no CPU on page faults).

Done in the process that hashes, not with MALLOC_MMAP_THRESHOLD_ in an environment: the bound
then holds however the service is started (image, `make run`, tests, by hand).
"""

from __future__ import annotations

import ctypes
import os

# mallopt's parameter number in glibc's malloc.h.
M_MMAP_THRESHOLD = -3
# Blocks of this size or more are mmapped, and unmapped when freed. Below argon2's block at any
# cost worth returning, above what the service otherwise allocates in one piece (pymalloc's
# arenas, 1 MiB, are mmapped by Python itself and not affected).
LARGE_BLOCK = 1024 * 1024


def is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):
        return False  # musl, macOS, Windows: no dynamic threshold to pin


def release_large_blocks() -> bool:
    """Pins glibc's mmap threshold at LARGE_BLOCK for this process; False where the C library
    is not glibc (nothing done)."""
    if not is_glibc():
        return False
    libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already runs on
    return bool(libc.mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK))
