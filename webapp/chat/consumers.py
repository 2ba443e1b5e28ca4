"""The chat WebSocket: parse frames, authorize, call a service, forward events.

The consumer stays thin. Everything that writes goes through chat.services;
live events come from the process's EventHub; finished responses are replayed
from Postgres.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import DatabaseSyncToAsync
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from webapp.chat import selectors, services
from webapp.chat.eventlog import encode
from webapp.chat.hub import Subscription, get_hub
from webapp.chat.protocol import (
    ChatRegenerate,
    ChatSend,
    Ping,
    ResponseCancel,
    ResponseSubscribe,
    parse_frame,
)
from webapp.common.errors import ArborError

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401


def db_call(fn: Any) -> Any:
    """Wrap an ORM call for the consumer: run it off the event loop, connection returned after.

    Not thread-sensitive: by default Channels funnels every socket's ORM calls in
    a process through one thread, so one slow send would hold up every other
    socket's subscribe. The calls here share no thread-bound state.
    """
    return DatabaseSyncToAsync(fn, thread_sensitive=False)


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.followers: dict[str, asyncio.Task[None]] = {}
        await self.accept()
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def disconnect(self, code: int) -> None:
        # Generation never depends on a socket: only stop forwarding.
        for task in list(getattr(self, "followers", {}).values()):
            task.cancel()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        req = None
        try:
            frame, req = parse_frame(text_data, max_bytes=settings.ARBOR_MAX_FRAME_BYTES)
            if isinstance(frame, Ping):
                await self._send({"type": "pong", "req": req})
            elif isinstance(frame, ChatSend):
                await self._chat_send(frame, req)
            elif isinstance(frame, ChatRegenerate):
                await self._chat_regenerate(frame, req)
            elif isinstance(frame, ResponseSubscribe):
                await self._subscribe(str(frame.response_id), frame.after_seq, req)
            elif isinstance(frame, ResponseCancel):
                await db_call(services.cancel_response)(
                    user=self.user, response_id=frame.response_id
                )
        except ArborError as exc:
            await self._send({"type": "error", "req": req or exc.req, **exc.as_dict()})
        except Exception:
            log.exception("chat frame failed")
            await self._send(
                {
                    "type": "error",
                    "req": req,
                    "code": "internal",
                    "message": "Something went wrong.",
                }
            )

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))

    def _check_room(self) -> None:
        """Refuse before creating anything when this socket follows all it may."""
        if len(self.followers) >= settings.ARBOR_MAX_SUBSCRIPTIONS_PER_SOCKET:
            raise ArborError(
                "rate_limited",
                f"At most {settings.ARBOR_MAX_SUBSCRIPTIONS_PER_SOCKET} responses can be followed "
                "on one connection.",
                retry_after_s=5,
            )

    async def _chat_send(self, frame: ChatSend, req: str | None) -> None:
        self._check_room()
        result = await db_call(services.send_message)(
            user=self.user,
            content=frame.content,
            conversation_id=frame.conversation_id,
            parent_id=frame.parent_id,
            model=frame.model,
            params=frame.params.model_dump(exclude_none=True) if frame.params else None,
            client_id=frame.client_id,
            edit_of=frame.edit_of,
        )
        await self._created(result, req)

    async def _chat_regenerate(self, frame: ChatRegenerate, req: str | None) -> None:
        self._check_room()
        conversation_id = await db_call(
            lambda: (
                selectors.response_for_user(
                    user=self.user, response_id=frame.response_id
                ).conversation_id
            )
        )()
        result = await db_call(services.send_message)(
            user=self.user,
            content="",
            conversation_id=conversation_id,
            model=frame.model,
            params=frame.params.model_dump(exclude_none=True) if frame.params else None,
            client_id=frame.client_id,
            regenerate=frame.response_id,
        )
        await self._created(result, req)

    async def _created(self, result: services.SendResult, req: str | None) -> None:
        await self._send(
            {
                "type": "response.created",
                "req": req,
                "conversation_id": result.conversation_id,
                "user_message_id": result.user_message_id,
                "response_id": result.response_id,
                "model": result.model,
            }
        )
        await self._subscribe(result.response_id, 0, req)

    async def _subscribe(self, response_id: str, after_seq: int, req: str | None) -> None:
        response = await db_call(selectors.response_for_user)(
            user=self.user, response_id=response_id
        )
        old = self.followers.pop(response_id, None)
        if old is not None:
            old.cancel()
        self._check_room()
        if response.is_terminal:
            events = await db_call(
                lambda: [
                    encode(e)
                    for e in selectors.archived_events(response=response, after_seq=after_seq)
                ]
            )()
            for raw in events:
                await self.send(text_data=raw)
            return
        sub = await get_hub().subscribe(response_id, after_seq)
        task = asyncio.create_task(self._follow(sub))
        self.followers[response_id] = task

    async def _follow(self, sub: Subscription) -> None:
        try:
            while True:
                frame = await sub.queue.get()
                await self.send(text_data=frame.raw)
                if frame.terminal:
                    return
        finally:
            get_hub().unsubscribe(sub)
            if self.followers.get(sub.response_id) is asyncio.current_task():
                del self.followers[sub.response_id]
