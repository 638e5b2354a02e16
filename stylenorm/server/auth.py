"""API keys: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``, compared in constant time."""

# No `from __future__ import annotations`: FastAPI evaluates the dependency's signature.
import secrets
from typing import Annotated

from fastapi import Depends, Security, params
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from stylenorm.server.errors import ApiError
from stylenorm.server.settings import Settings


def api_key_guard(settings: Settings) -> list[params.Depends]:
    """The dependencies that require one of the settings' API keys (none when no key is set)."""
    keys = [k.get_secret_value().encode() for k in settings.api_keys]
    if not keys:
        return []
    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
    bearer = HTTPBearer(auto_error=False, scheme_name="Bearer")

    async def require_key(
        key: Annotated[str | None, Security(api_key_header)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> None:
        offered = key or (credentials.credentials if credentials else "")
        ok = False
        for k in keys:  # every key is compared, so the time does not tell which one came close
            ok |= secrets.compare_digest(offered.encode(), k)
        if not ok:
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong API key: send it as X-API-Key: <key> or Authorization: Bearer <key>",
                {"WWW-Authenticate": 'Bearer realm="stylenorm", APIKey'},
            )

    return [Depends(require_key)]
