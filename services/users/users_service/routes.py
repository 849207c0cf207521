"""HTTP routes of the users service: the book's contract plus OAuth2, JWKS, me and sign-up."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.security import OAuth2PasswordBearer

from mythoughts_auth import CurrentToken, CurrentUser, RevocationList, RevocationUnavailable
from servicekit import FlagsDep, SessionDep, body_openapi, form_or_json
from servicekit.deps import from_state
from servicekit.problems import problem_openapi_response, problem_response
from users_service.accounts import (
    CountersUnavailable,
    LoginRefused,
    Throttled,
    UsernameTaken,
    check_login,
    create_user,
    delete_user,
    find_user,
    find_user_by_id,
)
from users_service.metrics import LoginMetrics
from users_service.passwords import Passwords
from users_service.schemas import (
    Credentials,
    Features,
    LoginOut,
    SignUp,
    TokenOut,
    TokenRequest,
    UserCreate,
    UserOut,
)
from users_service.settings import UsersSettings
from users_service.signing import SigningKeys
from users_service.throttle import LoginThrottle


async def get_revocations(request: Request) -> RevocationList:
    revocations: RevocationList | None = request.app.state.token_verifier.revocations
    assert revocations is not None  # the users service always keeps one (main.py)
    return revocations


SettingsDep = Annotated[UsersSettings, from_state("settings")]
RevocationsDep = Annotated[RevocationList, Depends(get_revocations)]
PasswordsDep = Annotated[Passwords, from_state("passwords")]
ThrottleDep = Annotated[LoginThrottle, from_state("throttle")]
SigningKeysDep = Annotated[SigningKeys, from_state("signing_keys")]

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: problem_openapi_response("Wrong username or password")
}
THROTTLED: dict[int | str, dict[str, Any]] = {
    429: problem_openapi_response("Too many failed logins; see Retry-After")
}

api = APIRouter(tags=["api"])


def _token_form_openapi() -> dict[str, Any]:
    content = body_openapi(TokenRequest)["requestBody"]["content"]
    form = "application/x-www-form-urlencoded"
    return {"requestBody": {"required": True, "content": {form: content[form]}}}


admin = APIRouter(prefix="/admin", tags=["admin (internal)"])


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _login(
    request: Request,
    session: SessionDep,
    passwords: Passwords,
    throttle: LoginThrottle,
    keys: SigningKeys,
    settings: UsersSettings,
    credentials: Credentials,
) -> str:
    login_metrics: LoginMetrics = request.app.state.login_metrics
    try:
        user = await check_login(
            session,
            passwords,
            throttle,
            username=credentials.username,
            password=credentials.password,
            address=_client_address(request),
        )
    except Throttled as exc:
        login_metrics.count("throttled")
        raise HTTPException(
            429,
            f"too many failed logins; try again in {exc.retry_after} seconds",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except CountersUnavailable:
        raise HTTPException(
            503, "the login throttle's counters are unavailable", headers={"Retry-After": "5"}
        ) from None
    except LoginRefused:
        login_metrics.count("failure")
        raise HTTPException(401, "wrong username or password") from None
    login_metrics.count("success")
    return keys.issue(
        user.username,
        issuer=settings.jwt_issuer,
        audience=None if settings.legacy_compatibility else settings.jwt_audience,
        ttl_seconds=settings.token_ttl_seconds,
    )


@api.post(
    "/api/login/",
    summary="Log in (the book's endpoint): form-encoded or JSON username and password",
    openapi_extra=body_openapi(Credentials),
    responses={**UNAUTHORIZED, **THROTTLED},
)
async def login(
    request: Request,
    session: SessionDep,
    passwords: PasswordsDep,
    throttle: ThrottleDep,
    keys: SigningKeysDep,
    settings: SettingsDep,
    credentials: Annotated[Credentials, Depends(form_or_json(Credentials))],
) -> LoginOut:
    token = await _login(request, session, passwords, throttle, keys, settings, credentials)
    return LoginOut(Authorized=f"Bearer {token}")


@api.post(
    "/api/token",
    summary="OAuth2 password grant (RFC 6749 §4.3), for standard clients and the docs",
    # Read by the kit's form parser (UTF-8, escaped or not; FastAPI's Form() read unescaped
    # bytes as Latin-1); documented as the form OAuth2 specifies.
    openapi_extra=_token_form_openapi(),
    responses={
        400: problem_openapi_response("Unsupported grant type or wrong credentials"),
        **THROTTLED,
    },
)
async def oauth2_token(
    request: Request,
    session: SessionDep,
    passwords: PasswordsDep,
    throttle: ThrottleDep,
    keys: SigningKeysDep,
    settings: SettingsDep,
    form: Annotated[TokenRequest, Depends(form_or_json(TokenRequest))],
) -> Any:
    credentials = Credentials.model_construct(username=form.username, password=form.password)
    try:
        token = await _login(request, session, passwords, throttle, keys, settings, credentials)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        return problem_response(400, "wrong username or password", error="invalid_grant")
    return TokenOut(access_token=token, expires_in=settings.token_ttl_seconds)


@api.get("/.well-known/jwks.json", summary="The public keys that verify our tokens (JWKS)")
async def jwks(keys: SigningKeysDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return keys.jwks()


# Only there so that the interactive docs offer "Authorize" with a username and password;
# verification itself is the token library's CurrentUser.
_docs_login = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)


@api.get(
    "/api/me/",
    summary="The logged-in user",
    dependencies=[Depends(_docs_login)],
    responses={401: problem_openapi_response("Missing or invalid token")},
)
async def me(username: CurrentUser, session: SessionDep) -> UserOut:
    user = await find_user(session, username)
    if user is None:
        raise HTTPException(401, "the account of this token no longer exists")
    return UserOut.model_validate(user)


# Sign-up is the feature flag `signup` (servicekit.flags): on for everybody, for listed users or
# for a share of them, from FEATURE_FLAGS_FILE; SIGNUP_ENABLED is its default.
SIGNUP_FLAG = "signup"


@api.post(
    "/api/logout/",
    status_code=204,
    summary="Log out: this token is refused from now on by every service",
    dependencies=[Depends(_docs_login)],
    responses={
        400: problem_openapi_response("A token without an id (jti) cannot be revoked"),
        401: problem_openapi_response("Missing or invalid token"),
        503: problem_openapi_response("The revocation list is unavailable; see Retry-After"),
    },
)
async def logout(token: CurrentToken, revocations: RevocationsDep) -> Response:
    jti = token.claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise HTTPException(400, "this token has no id (jti) and cannot be revoked")
    await _revoking(revocations.revoke_token(jti, float(token.claims["exp"])))
    return Response(status_code=204)


async def _revoking(revocation: Awaitable[None]) -> None:
    try:
        await revocation
    except RevocationUnavailable:
        raise HTTPException(
            503, "the revocation list is unavailable", headers={"Retry-After": "5"}
        ) from None


@api.get("/api/features/", summary="Which optional features this server has enabled")
async def features(
    settings: SettingsDep,
    flags: FlagsDep,
    username: Annotated[
        str | None, Query(max_length=200, description="answer for this user (sign-up rollouts)")
    ] = None,
) -> Features:
    return Features(
        signup=flags.enabled(SIGNUP_FLAG, user=username, default=settings.signup_enabled)
    )


@api.post(
    "/api/users/",
    status_code=201,
    summary="Sign up (when the `signup` flag is on for the username)",
    openapi_extra=body_openapi(SignUp),
    responses={
        403: problem_openapi_response("Sign-up is disabled on this server"),
        409: problem_openapi_response("The username is taken"),
    },
)
async def sign_up(
    request: Request,
    session: SessionDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
    flags: FlagsDep,
    new_user: Annotated[SignUp, Depends(form_or_json(SignUp))],
) -> UserOut:
    if not flags.enabled(SIGNUP_FLAG, user=new_user.username, default=settings.signup_enabled):
        raise HTTPException(403, "sign-up is disabled on this server")
    return await _create(session, passwords, new_user, client=_client_address(request))


async def _create(
    session: SessionDep, passwords: Passwords, new_user: UserCreate, *, client: str | None = None
) -> UserOut:
    try:
        user = await create_user(
            session, passwords, new_user.username, new_user.password, client=client
        )
    except UsernameTaken:
        raise HTTPException(409, f"the username {new_user.username!r} is taken") from None
    return UserOut.model_validate(user)


@admin.post(
    "/users/",
    status_code=201,
    summary="Create a user (internal)",
    openapi_extra=body_openapi(UserCreate),
    responses={409: problem_openapi_response("The username is taken")},
)
async def admin_create_user(
    session: SessionDep,
    passwords: PasswordsDep,
    new_user: Annotated[UserCreate, Depends(form_or_json(UserCreate))],
) -> UserOut:
    return await _create(session, passwords, new_user)


@admin.delete(
    "/users/{user_id}/",
    status_code=204,
    summary="Delete a user (internal)",
    responses={404: problem_openapi_response("No such user")},
)
async def admin_delete_user(
    session: SessionDep,
    settings: SettingsDep,
    revocations: RevocationsDep,
    user_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> Response:
    # Revoked first: should the deletion fail, the account's tokens are refused anyway, and
    # a repeated DELETE finishes it; the other order would leave live tokens of a gone account.
    user = await find_user_by_id(session, user_id)
    if user is None:
        raise HTTPException(404, f"no user with id {user_id}")
    await _revoking(
        revocations.revoke_user(user.username, settings.token_ttl_seconds + REVOCATION_MARGIN)
    )
    await delete_user(session, user_id)
    return Response(status_code=204)


# Beyond the longest token lifetime: verifiers accept an expired token for their leeway (30 s).
REVOCATION_MARGIN = 300
