"""``/docs`` and ``/redoc``: not served, with where the API is described instead.

FastAPI's interactive docs load Swagger UI / ReDoc from a CDN and start them with an inline
script, which the gateway's CSP refuses (and which a machine without internet cannot load).
Serving them from a package would need a new dependency, a page-specific CSP allowing inline
styles, and a large third-party JavaScript application on the origin whose tab holds the
reviewers' tokens; the schema itself (``/openapi.json``) and docs/gateway-api.md describe the
same API, and any Swagger / OpenAPI tool can open the schema from elsewhere.
"""

from __future__ import annotations

from fastapi import APIRouter

from loupe.gateway.errors import ApiError

router = APIRouter(tags=["operations"])

NOT_SERVED = (
    "the gateway does not serve interactive API docs (its Content-Security-Policy allows no "
    "third-party scripts): the OpenAPI schema is at /openapi.json (open it in any OpenAPI tool) "
    "and the API is described in docs/gateway-api.md"
)


@router.get("/docs", include_in_schema=False)
@router.get("/redoc", include_in_schema=False)
async def docs_not_served() -> None:
    """Say where the API is described instead of a page that could not run."""
    raise ApiError(404, "docs_not_served", NOT_SERVED)
