"""The nats source's Puller against a stand-in client: how pull requests end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from nats.aio.msg import Msg

from collector.sources.nats import Puller

pytestmark = pytest.mark.anyio

Callback = Callable[[Msg], Awaitable[None]]


class Client:
    """What Puller uses of nats-py's Client: an inbox, one subscription, publishes."""

    def __init__(self) -> None:
        self.callbacks: dict[str, Callback] = {}
        self.requests: list[tuple[str, bytes, str]] = []

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Callback) -> Any:
        self.callbacks[subject] = cb
        return None

    async def publish(self, subject: str, payload: bytes, reply: str) -> None:
        self.requests.append((subject, payload, reply))

    async def deliver(self, subject: str, reply: str = "", headers: Any = None) -> None:
        [callback] = self.callbacks.values()
        await callback(Msg(_client=self, subject=subject, reply=reply, headers=headers))  # type: ignore[arg-type]


def expired() -> dict[str, str]:
    return {"Status": "408", "Description": "Request Timeout"}


async def test_a_request_ends_with_its_batch_or_its_status() -> None:
    client = Client()
    puller = Puller(client, "EVENTS", "collector", batch=2)  # type: ignore[arg-type]
    await puller.open()

    await puller.request(expires_s=5)
    await client.deliver("events.a", reply="$JS.ACK.EVENTS.collector.1.1.1.0.1")
    await client.deliver("events.b", reply="$JS.ACK.EVENTS.collector.1.2.2.0.0")
    assert [m.subject for m in await puller.next_messages()] == ["events.a", "events.b"]
    assert await puller.next_messages() == []  # the batch arrived: complete

    await puller.request(expires_s=5)
    [(_, body, reply)] = client.requests[1:]
    assert body == b'{"batch":2,"expires":5000000000}'
    await client.deliver(reply, headers={"Status": "409", "Description": "Consumer Deleted"})
    assert await puller.next_messages() == []
    assert puller.problem == "409 Consumer Deleted"


async def test_a_request_lost_on_the_way_ends_one_second_past_its_expiry() -> None:
    puller = Puller(Client(), "EVENTS", "collector", batch=10)  # type: ignore[arg-type]
    await puller.open()
    await puller.request(expires_s=0.01)
    with anyio.fail_after(5):
        assert await puller.next_messages() == []
    assert puller.problem == "no answer"  # the source then looks whether its consumer is there


async def test_a_request_that_ended_with_its_batch_is_not_later_marked_unanswered() -> None:
    # The expiry timer outlives a complete batch while the source waits for room in the queue.
    client = Client()
    puller = Puller(client, "EVENTS", "collector", batch=1)  # type: ignore[arg-type]
    await puller.open()
    await puller.request(expires_s=0.01)
    await client.deliver("events.a", reply="$JS.ACK.EVENTS.collector.1.1.1.0.0")
    assert len(await puller.next_messages()) == 1
    await anyio.sleep(1.2)  # past expiry + 1 s
    assert await puller.next_messages() == []
    assert puller.problem is None


async def test_the_late_status_of_an_earlier_request_does_not_end_the_current_one() -> None:
    client = Client()
    puller = Puller(client, "EVENTS", "collector", batch=10)  # type: ignore[arg-type]
    await puller.open()
    await puller.request(expires_s=0.01)
    assert await puller.next_messages() == []  # ended here, its 408 still on the way
    await puller.request(expires_s=5)

    first_reply = client.requests[0][2]
    await client.deliver(first_reply, headers=expired())
    with anyio.move_on_after(0.2) as waited:
        await puller.next_messages()
    assert waited.cancelled_caught  # still waiting for the current request's messages

    await client.deliver("events.a", reply="$JS.ACK.EVENTS.collector.1.1.1.0.0")
    assert [m.subject for m in await puller.next_messages()] == ["events.a"]
    await client.deliver(client.requests[1][2], headers=expired())
    assert await puller.next_messages() == []
