"""Registration, tokens, the caller's profile, and roles (admin)."""

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from tick2trade.host.api.deps import Admin, Anonymous, CurrentUser, PlatformDep, address
from tick2trade.host.api.schemas import (USERNAME, LoginIn, ProfileIn, RefreshIn, RegisterIn,
                                         RoleIn, TokensOut, UserOut)
from tick2trade.host.services.auth import TokenPair

router = APIRouter(tags=["users"])


def _tokens(t: TokenPair) -> TokensOut:
    return TokensOut(access_token=t.access_token, refresh_token=t.refresh_token,
                     expires_in=t.expires_in)


@router.post("/auth/register", status_code=201, response_model=UserOut,
             dependencies=[Anonymous])
def register(body: RegisterIn, platform: PlatformDep):
    return platform.users.register(body.username, body.email, body.password, body.display_name)


@router.post("/auth/login", response_model=TokensOut, dependencies=[Anonymous])
def login(body: LoginIn, request: Request, platform: PlatformDep):
    return _tokens(platform.users.login(body.username, body.password, address(request)))


@router.post("/auth/refresh", response_model=TokensOut, dependencies=[Anonymous])
def refresh(body: RefreshIn, platform: PlatformDep):
    return _tokens(platform.users.refresh(body.refresh_token))


@router.post("/auth/logout", status_code=204)
def logout(body: RefreshIn, who: CurrentUser, platform: PlatformDep):
    platform.users.logout(body.refresh_token)
    return Response(status_code=204)


@router.get("/users/me", response_model=UserOut)
def me(who: CurrentUser, platform: PlatformDep):
    return platform.users.get(who.user_id)


@router.patch("/users/me", response_model=UserOut)
def update_me(body: ProfileIn, who: CurrentUser, request: Request, platform: PlatformDep):
    changes = body.model_dump(exclude_unset=True, exclude={"current_password"})
    if "password" in changes:
        # a stolen access token alone must not be enough to take the account over
        platform.users.confirm_password(who.username, body.current_password or "",
                                        address(request))
    if "webhook_url" in changes and changes["webhook_url"] is not None:
        changes["webhook_url"] = str(changes["webhook_url"])
    if changes.get("display_name") is None:
        changes.pop("display_name", None)
    if changes.get("email") is None:
        changes.pop("email", None)
    return platform.users.update_profile(who.user_id, changes)


@router.put("/users/{username}/role", response_model=UserOut)
def set_role(username: Annotated[str, Path(pattern=USERNAME)], body: RoleIn, who: Admin,
             platform: PlatformDep):
    return platform.users.set_role(username, body.role, who.username)
