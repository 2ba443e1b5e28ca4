"""Export API (`/api/exports/…`, staff only): streamed JSON Lines and frozen snapshots.

Under ASGI (Daphne) a streaming response must be an async iterator: Django 5.2 serves a
sync one by reading it to the end into a list first, which would hold a whole campaign
in memory. So the ASGI path wraps the export's chunks in an async generator that
fetches each chunk on a worker thread and gives the connection back after it; the
WSGI path (and the sync test client) iterates the same chunks directly.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any, BinaryIO
from uuid import UUID

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connection, connections
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Field, Router, Schema

from webapp.accounts.permissions import staff_user
from webapp.annotation import exports
from webapp.annotation.models import Campaign, ExportSnapshot
from webapp.audit import services as audit
from webapp.common.errors import ArborError
from webapp.common.types import path_uuid

log = logging.getLogger(__name__)

router = Router(tags=["exports"])

CONTENT_TYPE = "application/x-ndjson; charset=utf-8"
FILE_BLOCK = 256 * 1024

OPTIONS_DOC = """
Options (query string; unknown or repeated ones are refused with 400):

- every kind: `campaign` (required), `include_gold` (false);
- `dpo`: `by` = `answer` | `reasoning`, `reasoning` = `include` | `exclude`,
  `form` = `conversational` | `standard`;
- `kto`: `reasoning`, `form`, `task` = `all` | `step_labels` | `rubric`, `min_score` (4);
- `prm`: `neutral` = `negative` | `positive` | `drop` (what a 0 rating becomes);
- `sft`: `accept` = `labels_or_auto` | `labels` | `auto`, `min_score` (4).

Record shapes and the aggregation policies: `webapp/annotation/exports.py`.
"""


class SnapshotIn(Schema):
    campaign: UUID
    options: dict[str, str | int | bool] = Field(default_factory=dict)


class SnapshotOut(Schema):
    id: UUID
    campaign: UUID
    kind: str
    version: int
    options: dict[str, Any]
    records: int
    size_bytes: int
    sha256: str
    status: str
    error: str
    created_at: datetime
    created_by: str
    finished_at: datetime | None
    download_url: str


def _snapshot_out(snapshot: ExportSnapshot) -> SnapshotOut:
    return SnapshotOut(
        id=snapshot.pk,
        campaign=snapshot.campaign_id,
        kind=snapshot.kind,
        version=snapshot.version,
        options=snapshot.options,
        records=snapshot.records,
        size_bytes=snapshot.size_bytes,
        sha256=snapshot.sha256,
        status=snapshot.status,
        error=snapshot.error,
        created_at=snapshot.created_at,
        created_by=snapshot.created_by.get_username(),
        finished_at=snapshot.finished_at,
        download_url=f"/api/exports/snapshots/{snapshot.pk}.jsonl",
    )


def _query(request: HttpRequest) -> dict[str, str]:
    """Return the query string as single values; a repeated key is refused, not guessed at."""
    params: dict[str, str] = {}
    for key, values in request.GET.lists():
        if len(values) != 1:
            raise ArborError("invalid_request", f"{key}: give this option once.")
        params[key] = values[0]
    return params


def _campaign(raw: str | None) -> Campaign:
    if not raw:
        raise ArborError("invalid_request", "campaign: required.")
    try:
        campaign_id = UUID(raw)
    except ValueError as exc:
        raise ArborError("invalid_request", "campaign: not a campaign id.") from exc
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise ArborError("not_found", "Not found.")
    return campaign


async def _off_loop(blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Serve sync blocks to ASGI one at a time, each read on a worker thread."""

    def step() -> bytes | None:
        try:
            return next(blocks, None)
        finally:
            # Give the connection back between blocks: a slow download must not hold one.
            connections.close_all()

    try:
        while (block := await sync_to_async(step, thread_sensitive=False)()) is not None:
            yield block
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()


def _stream(request: HttpRequest, blocks: Iterator[bytes], name: str) -> StreamingHttpResponse:
    content: Iterator[bytes] | AsyncIterator[bytes] = blocks
    if isinstance(request, ASGIRequest):
        # The view's own connection would otherwise stay checked out of the pool until the
        # last byte is sent; every block takes one for itself (`_off_loop`).
        if not connection.in_atomic_block:
            connection.close()
        content = _off_loop(blocks)
    response = StreamingHttpResponse(content, content_type=CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    # Proxies (nginx) pass the body on as it comes instead of buffering it.
    response["X-Accel-Buffering"] = "no"
    return response


def _file_blocks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        while block := fh.read(FILE_BLOCK):
            yield block


@router.get(
    "/exports/snapshots",
    response=list[SnapshotOut],
    summary="List frozen exports",
)
def list_snapshots(request: HttpRequest, campaign: str = "", kind: str = "") -> list[SnapshotOut]:
    """Snapshots, newest first, of one campaign (and kind) or of all campaigns."""
    staff_user(request)
    qs = ExportSnapshot.objects.select_related("created_by").order_by("-created_at")
    if campaign:
        qs = qs.filter(campaign=_campaign(campaign))
    if kind:
        if kind not in exports.KINDS:
            raise ArborError("invalid_request", f"kind: one of {', '.join(exports.KINDS)}.")
        qs = qs.filter(kind=kind)
    return [_snapshot_out(s) for s in qs[:500]]


@router.get(
    "/exports/snapshots/{snapshot_id}.jsonl",
    response={200: None},
    summary="Download a frozen export",
)
def download_snapshot(request: HttpRequest, snapshot_id: str) -> StreamingHttpResponse:
    """The snapshot's exact bytes, after checking them against its sha256 (500 if tampered).

    409 while it is still being written, or when writing it failed (with the error).
    """
    user = staff_user(request)
    snapshot = (
        ExportSnapshot.objects.select_related("campaign").filter(pk=path_uuid(snapshot_id)).first()
    )
    if snapshot is None:
        raise ArborError("not_found", "Not found.")
    fh = exports.open_snapshot(snapshot)
    audit.record(actor=user, source="api", action="download", obj=snapshot)
    response = _stream(
        request,
        _file_blocks(fh),
        exports.filename(campaign=snapshot.campaign, kind=snapshot.kind, version=snapshot.version),
    )
    response["Content-Length"] = str(snapshot.size_bytes)
    response["ETag"] = f'"{snapshot.sha256}"'
    response["X-Checksum-Sha256"] = snapshot.sha256
    return response


@router.post(
    "/exports/{kind}/snapshots",
    response={202: SnapshotOut},
    summary="Freeze an export as a versioned snapshot",
)
def create_snapshot(request: HttpRequest, kind: str, data: SnapshotIn) -> tuple[int, SnapshotOut]:
    """Reserve the next version (`pending`); a worker writes the file and its checksum.

    Poll the list until the snapshot is `ready` (or `failed`, with its `error`).
    """
    user = staff_user(request)
    options = exports.parse_options(kind=kind, params=data.options)
    campaign = _campaign(str(data.campaign))
    snapshot = exports.reserve_snapshot(campaign=campaign, kind=kind, options=options, by=user)
    audit.record(
        actor=user, source="api", action="create", obj=snapshot, after=audit.snapshot(snapshot)
    )
    return 202, _snapshot_out(snapshot)


@router.get(
    "/exports/{kind}.jsonl",
    response={200: None},
    summary="Export a campaign as training data (JSON Lines, streamed)",
    description=OPTIONS_DOC,
)
def export(request: HttpRequest, kind: str) -> StreamingHttpResponse:
    """Stream the campaign's `dpo`, `kto`, `prm` or `sft` records."""
    user = staff_user(request)
    params = _query(request)
    raw_campaign = params.pop("campaign", None)
    options = exports.parse_options(kind=kind, params=params)
    campaign = _campaign(raw_campaign)
    audit.record(
        actor=user,
        source="api",
        action="export",
        obj=campaign,
        after={"kind": kind, "options": options.model_dump(mode="json")},
    )
    blocks = exports.iter_export_bytes(campaign=campaign, kind=kind, options=options)
    return _stream(request, blocks, exports.filename(campaign=campaign, kind=kind))
