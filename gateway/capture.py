"""``hearth capture``: record live broker traffic in the capture format (DESIGN.md contract 4), so
that ``hearth replay`` can show what the gateway makes of it, anywhere, without the devices."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.app import stop_on_signals
from gateway.clock import SystemClock, iso_utc
from gateway.config import MqttSection


def capture_line(t: float, topic: str, payload: bytes, retain: bool) -> bytes:
    """One capture line. JSON payloads are kept as JSON, text as a string, anything else as base64."""
    record: dict[str, Any] = {"t": iso_utc(t), "source": "mqtt", "topic": topic}
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        record["payload_base64"] = base64.b64encode(payload).decode("ascii")
    else:
        try:
            value = orjson.loads(payload) if text[:1] in ("{", "[") else text
        except orjson.JSONDecodeError:
            value = text
        record["payload"] = value
    record["retain"] = retain
    return orjson.dumps(record) + b"\n"


async def capture(
    settings: MqttSection,
    out_path: Path,
    topics: list[str],
    *,
    duration_s: float | None = None,
    max_messages: int | None = None,
    status: TextIO | None = None,
) -> int:
    """Subscribe to ``topics`` and append every message to ``out_path`` until stopped. Returns the count."""
    from gateway.mqtt import MqttSession

    clock = SystemClock()
    done = asyncio.Event()
    count = 0
    stop_on_signals(done.set)
    # A capture client must not announce itself as the gateway: no birth/LWT on the status topic.
    settings = settings.model_copy(update={"status_topic": ""})
    with out_path.open("ab") as file:

        def on_message(topic: str, payload: bytes, retain: bool) -> None:
            nonlocal count
            if done.is_set():
                return
            file.write(capture_line(clock.time(), topic, payload, retain))
            count += 1
            if max_messages is not None and count >= max_messages:
                done.set()

        async with MqttSession(settings, clock, client_id=f"hearth-capture-{id(file) & 0xFFFF:04x}") as session:
            for topic in topics:
                session.subscribe(topic, on_message)
            if status is not None:
                print(f"capturing {', '.join(topics)} from {settings.host}:{settings.port} into {out_path} "
                      "(Ctrl-C to stop)", file=status, flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), duration_s)
        file.flush()
    return count
