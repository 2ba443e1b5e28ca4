"""Static files: WhiteNoise serves the built frontend in the async chain, with cache headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient, Client

from webapp.common.middleware import StaticFilesMiddleware


def _an_asset() -> str:
    assets = sorted((Path(settings.FRONTEND_DIST) / "assets").glob("*.js"))
    if not assets:
        pytest.fail("frontend/dist has no built assets: run `make frontend`")
    return f"{settings.STATIC_URL}assets/{assets[0].name}"


def _body(response: object) -> bytes:
    return b"".join(response.streaming_content)  # type: ignore[attr-defined]


def test_the_middleware_chain_is_async_end_to_end() -> None:
    """No sync-only middleware: one would push every request through one thread."""
    handler = ASGIHandler()
    assert StaticFilesMiddleware.async_capable
    chain = handler._middleware_chain
    # The top of an all-async chain is a middleware instance, not an adapter thunk.
    assert not type(chain).__name__.startswith(("SyncToAsync", "AsyncToSync")), chain


async def test_an_asset_is_served_under_asgi() -> None:
    response = await AsyncClient().get(_an_asset())
    assert response.status_code == 200
    assert response["Content-Type"].startswith(("text/javascript", "application/javascript"))
    assert len(_body(response)) > 100


def test_an_asset_is_served_under_wsgi_too() -> None:
    response = Client().get(_an_asset())
    assert response.status_code == 200 and len(_body(response)) > 100


@pytest.mark.django_db
async def test_other_paths_reach_django() -> None:
    response = await AsyncClient().get("/static/no-such-file.js")
    assert response.status_code == 404
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
