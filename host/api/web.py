"""The web client at ``/`` and the API docs at ``/docs``, both from files on this machine.

``make setup`` builds the client (``web/``, Vite) into ``host/api/static``: ``index.html``,
its hashed bundles under ``assets/`` and Swagger UI's files under ``swagger/`` (npm's
``swagger-ui-dist``), so neither page needs the internet. Without a build ``/`` answers
503 saying how to make one; the API itself does not depend on it.

CORS: same origin only unless ``origins`` lists others (``t2t api --cors-origin``); the
client is served by the API, so it never needs one.
"""

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
NOT_BUILT = ("the web client is not built: run `make setup` (npm ci and the Vite build "
             "in web/) in the checkout")


def install(app: FastAPI, origins: Sequence[str] = ()) -> None:
    """Serve the client and the docs page on ``app`` and apply the CORS allow-list."""
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(origins),
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    def client() -> Response:
        index = STATIC / "index.html"
        if not index.is_file():
            return PlainTextResponse(NOT_BUILT, status_code=503)
        # the page names hashed bundles: it must be fetched again after a rebuild
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if not (STATIC / "swagger").is_dir():
            return HTMLResponse(NOT_BUILT, status_code=503)
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - docs",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")
