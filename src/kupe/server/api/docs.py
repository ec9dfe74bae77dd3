"""Interactive API docs served entirely by Kupe: Swagger UI's assets come from the
swagger-ui-bundle package, so /docs works on a machine without internet access.

The pages are module-level routes that read the app from the request: FastAPI keeps every
endpoint it has classified in a process-wide cache, so a closure over the app would keep each
app ever built alive (in a test run, hundreds of them)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"

router = APIRouter(include_in_schema=False)


@router.get(DOCS_URL)
async def docs(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url or "",
        title=f"{app.title} - docs",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        oauth2_redirect_url=REDIRECT_URL,
    )


@router.get(REDIRECT_URL)
async def oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs with its JavaScript, CSS and icons from the same origin."""
    assets = Path(str(swagger_ui_bundle.swagger_ui_path))
    app.mount(ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")
    app.include_router(router)
