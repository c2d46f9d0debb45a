"""Bearer tokens from settings: who may call, with which scope, seeing what.

401 when no or an unknown token is given (with ``WWW-Authenticate: Bearer``);
403 when the token lacks the scope or may not see the cluster asked for.
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request

from kmevents.settings import ApiToken, Settings


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    clusters: frozenset[str] | None
    namespaces: frozenset[str] | None

    def may_see_cluster(self, cluster: str) -> bool:
        return self.clusters is None or cluster in self.clusters


def _principal(t: ApiToken) -> Principal:
    return Principal(t.name or "token", frozenset(t.scopes),
                     frozenset(t.clusters) if t.clusters is not None else None,
                     frozenset(t.namespaces) if t.namespaces is not None else None)


def authenticate(settings: Settings, request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "missing bearer token: send `Authorization: Bearer <token>`",
                            headers={"WWW-Authenticate": "Bearer"})
    for t in settings.api.tokens:
        if hmac.compare_digest(t.token.get_secret_value().encode(), token.encode()):
            return _principal(t)
    raise HTTPException(401, "unknown bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def require(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise HTTPException(403, f"token {principal.name!r} lacks the {scope!r} scope")


def reader(settings: Settings, request: Request, cluster: str | None = None) -> Principal:
    """A caller with the ``read`` scope that may see ``cluster`` (when one is named): else 401/403."""
    principal = authenticate(settings, request)
    require(principal, "read")
    if cluster is not None and not principal.may_see_cluster(cluster):
        raise HTTPException(403, f"token {principal.name!r} may not see cluster {cluster!r}")
    return principal
