"""Fixtures of the annotation tests: a campaign with traces, annotators, export folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.annotation.factories import make_campaign, make_prompt, make_trace
from tests.conftest import _make_user


@pytest.fixture
def carol(db: None) -> Any:
    """A second annotator."""
    return _make_user("carol", group="annotator")


@pytest.fixture
def dave(db: None) -> Any:
    """A third annotator."""
    return _make_user("dave", group="annotator")


@pytest.fixture
def campaign(admin_user: Any, alice: Any, llm: Any) -> Any:
    """Two prompts with two traces each, all three task types, overlap 2, no gold."""
    c = make_campaign(by=admin_user, overlap=2, gold_rate=0.0)
    for n in range(2):
        p = make_prompt(c, text=f"What is 12 * {7 + n}?", reference=str(12 * (7 + n)))
        for k in range(2):
            make_trace(c, p, user=alice, llm=llm, sample_index=k)
    return c


@pytest.fixture
def export_dir(tmp_path: Path, settings: Any) -> Path:
    settings.ARBOR_EXPORT_DIR = tmp_path / "exports"
    return Path(settings.ARBOR_EXPORT_DIR)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The snapshot ids sent to the writing task: recorded, not sent to a broker."""
    from webapp.annotation import tasks

    sent: list[str] = []
    monkeypatch.setattr(tasks.write_snapshot, "delay", sent.append)
    return sent
