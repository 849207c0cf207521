"""Configuration of the users service, from the environment (see servicekit.settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from servicekit.settings import ServiceSettings


class UsersSettings(ServiceSettings):
    service_name: str = "users"
    port: int = Field(default=8001, ge=1, le=65535)
    database_url: str = "sqlite+aiosqlite:///var/users.db"

    # Signing keys: a folder of `<kid>.key.pem` (private, can sign) and `<kid>.pub.pem` (public
    # only: a retired key whose tokens are still valid). Every key is published in the JWKS.
    jwt_keys_dir: Path = Path("var/keys")
    # Which key signs new tokens; may be left empty when the folder holds exactly one private key.
    jwt_signing_kid: str | None = None
    jwt_issuer: str = "mythoughts-users"
    jwt_audience: str = "mythoughts"
    token_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # A mixed fleet during a migration from the book's services (README, "Taking over"):
    # tokens without `aud` and `nbf`, which the book's services accept, and our own verifier
    # accepting the book's tokens (no kid) signed with the legacy key. Off by default.
    legacy_compatibility: bool = False
    # The book's private key file (its PEM as the book's users service reads it). It becomes
    # kid `legacy` and signs new tokens unless JWT_SIGNING_KID names another key.
    legacy_signing_key_file: Path | None = None

    signup_enabled: bool = False

    # Failed-login throttling (users_service.throttle): guesses per (account, client) per
    # window, then the account's backoff for clients that failed on it; per client address.
    login_failure_window_seconds: int = Field(default=900, ge=1, le=86400)
    login_max_failures_per_username: int = Field(default=5, ge=1, le=10_000)
    login_backoff_max_seconds: int = Field(default=60, ge=1, le=86400)
    login_max_failures_per_address: int = Field(default=50, ge=1, le=100_000)
    redis_url: str | None = None
    # Every key this service writes to Redis starts with it (several deployments, one Redis).
    redis_prefix: str = Field(default="mythoughts:", min_length=1, max_length=100)

    # argon2id cost: OWASP's recommended minimum (m = 19 MiB, t = 2, p = 1), about a quarter of
    # argon2-cffi's default CPU per login; raise it and hashes are renewed at the next login.
    argon2_time_cost: int = Field(default=2, ge=1, le=20)
    argon2_memory_kib: int = Field(default=19456, ge=8, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1, le=64)
    # Each hash's block goes back to the system when the hash is done (users_service.heap): a
    # worker's memory at rest does not keep one block per check thread. Costs page faults per
    # hash (a few ms with transparent huge pages, ~14 ms without, bench/README.md "Logins").
    argon2_release_memory: bool = True
    # Password checks are costly by design, so their queue is short and fair
    # (users_service.check_queue): one client address may have this many in progress; a check
    # that would not start within the wait answers 503 with Retry-After at once; addresses with
    # fewer recent failures go first. The checks' threads may run at a lower CPU priority than
    # the event loop (nice +N). Off by default: on a host shared with other busy processes the
    # checks then starve (bench/README.md, target 2); it is for a container with its own cgroup.
    password_checks_per_client: int = Field(default=2, ge=1, le=1000)
    password_check_wait_seconds: float = Field(default=0.5, gt=0, le=60)
    password_check_niceness: int = Field(default=0, ge=0, le=19)
