"""JSON API for the models a caller may use."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema

from webapp.serving import selectors

router = Router(tags=["models"])


class ModelOut(Schema):
    slug: str
    name: str
    description: str
    context_length: int
    healthy: bool
    default: bool


def models_for(user: Any) -> list[dict[str, Any]]:
    llms = list(selectors.llms_for_user(user=user))
    live = selectors.llm_ids_with_live_endpoint(llm_ids=[m.pk for m in llms])
    return [
        {
            "slug": m.slug,
            "name": m.name,
            "description": m.description,
            "context_length": m.context_length,
            "healthy": m.pk in live,
            "default": m.is_default,
        }
        for m in llms
    ]


@router.get("/models", response=list[ModelOut], summary="Models the caller may use")
def list_models(request: HttpRequest) -> list[dict[str, Any]]:
    """List the enabled models the caller may use, with whether one endpoint can serve."""
    return models_for(request.user)
