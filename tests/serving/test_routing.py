"""endpoint_candidates: usable endpoints, least loaded per unit of weight first."""

from __future__ import annotations

from typing import Any

import pytest

from webapp.chat import services as chat
from webapp.chat.models import Response
from webapp.serving import services
from webapp.serving.models import Endpoint
from webapp.serving.selectors import endpoint_candidates


@pytest.fixture
def model(db: None) -> Any:
    return services.upsert_llm(slug="m", name="M", served_model_name="m", is_default=True)


def endpoint(model: Any, name: str, **fields: Any) -> Endpoint:
    ep = services.ensure_endpoint(llm=model, base_url=f"http://{name}:30000")
    Endpoint.objects.filter(pk=ep.pk).update(**{"health": "healthy", **fields})
    return ep


def load(user: Any, ep: Endpoint, n: int) -> None:
    for i in range(n):
        rid = chat.send_message(user=user, content=f"load {i}").response_id
        Response.objects.filter(pk=rid).update(status="running", endpoint=ep)


def names(model: Any) -> list[str]:
    return [t.base_url.split("//")[1].split(":")[0] for t in endpoint_candidates(llm_id=model.pk)]


@pytest.fixture
def busy(alice: Any, model: Any, settings: Any) -> Any:
    settings.ARBOR_DEFAULT_REQUESTS_PER_MINUTE = 10_000
    settings.ARBOR_DEFAULT_CONCURRENT_STREAMS = 10_000
    return lambda ep, n: load(alice, ep, n)


def test_least_loaded_per_weight_first(model: Any, busy: Any) -> None:
    a = endpoint(model, "a", weight=1)
    b = endpoint(model, "b", weight=4)
    c = endpoint(model, "c", weight=1)
    busy(a, 2)  # 2.0 per weight
    busy(b, 4)  # 1.0 per weight
    busy(c, 1)  # 1.0 per weight; tie with b goes to the lower id
    assert names(model) == ["b", "c", "a"]


def test_idle_endpoints_come_first_and_healthy_before_unknown(model: Any, busy: Any) -> None:
    unknown = endpoint(model, "unknown", health="unknown")
    healthy = endpoint(model, "healthy")
    loaded = endpoint(model, "loaded")
    busy(loaded, 1)
    assert names(model) == ["healthy", "unknown", "loaded"]
    assert unknown.pk < healthy.pk


@pytest.mark.parametrize(
    "change", [{"enabled": False}, {"draining": True}, {"health": "unhealthy"}], ids=str
)
def test_unusable_endpoints_are_excluded(model: Any, change: dict[str, Any]) -> None:
    endpoint(model, "ok")
    endpoint(model, "bad", **change)
    assert names(model) == ["ok"]


def test_full_endpoints_are_excluded(model: Any, busy: Any) -> None:
    full = endpoint(model, "full", max_concurrency=2, weight=100)
    endpoint(model, "spare", max_concurrency=2)
    busy(full, 2)
    assert names(model) == ["spare"]


def test_only_running_responses_count_as_load(model: Any, busy: Any, alice: Any) -> None:
    a = endpoint(model, "a")
    endpoint(model, "b")
    busy(a, 3)
    Response.objects.filter(endpoint=a).update(status="completed")
    assert names(model) == ["a", "b"]


def test_other_models_endpoints_are_not_candidates(model: Any) -> None:
    other = services.upsert_llm(slug="other", name="O", served_model_name="o")
    endpoint(other, "elsewhere")
    endpoint(model, "here")
    assert names(model) == ["here"]
    assert names(other) == ["elsewhere"]


def test_no_usable_endpoint_gives_no_candidates(model: Any) -> None:
    endpoint(model, "down", health="unhealthy")
    assert endpoint_candidates(llm_id=model.pk) == []


def test_candidates_never_show_the_api_key(model: Any) -> None:
    ep = endpoint(model, "secret")
    Endpoint.objects.filter(pk=ep.pk).update(api_key="sk-very-secret")
    (target,) = endpoint_candidates(llm_id=model.pk)
    assert target.api_key == "sk-very-secret" and "sk-very-secret" not in repr(target)
