"""``hearth replay``: run a capture through the same adapters, codecs and hub as ``hearth run``, on a
simulated clock, with no network, and report what the gateway made of it (DESIGN.md contracts 4, 5)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.bus import InputRejected
from gateway.clock import SimulatedClock, iso_utc
from gateway.config import Config
from gateway.hub import Hub
from gateway.model.types import Command
from gateway.mqtt import topic_matches
from gateway.sdk import MessageCallback, Unsubscribe
from gateway.supervisor import Supervisor, discover_adapters

log = logging.getLogger("hearth.replay")


class ReplayMqtt:
    """An in-memory stand-in for the MQTT session: captured messages in, published messages recorded."""

    def __init__(self, clock: SimulatedClock) -> None:
        self._clock = clock
        self._subscriptions: list[tuple[str, MessageCallback]] = []
        self.published: list[dict[str, Any]] = []

    @property
    def connected(self) -> bool:
        return True

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0) -> Unsubscribe:
        entry = (topic_filter, callback)
        self._subscriptions.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscriptions:
                self._subscriptions.remove(entry)

        return unsubscribe

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        self.published.append({"t": iso_utc(self._clock.time()), "topic": topic, "payload": text, "retain": retain})

    def deliver(self, topic: str, payload: bytes, retain: bool) -> int:
        delivered = 0
        for topic_filter, callback in tuple(self._subscriptions):
            if topic_matches(topic_filter, topic):
                callback(topic, payload, retain)
                delivered += 1
        return delivered


@dataclass
class CaptureRecord:
    line: int
    t: float
    source: str
    data: dict[str, Any]


@dataclass
class ReplayResult:
    devices: list[dict[str, Any]]
    actions: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"devices": self.devices, "actions": self.actions, "alerts": self.alerts, "errors": self.errors}


def parse_time(value: Any) -> float:
    """``t`` of a capture line: epoch seconds (number) or ISO-8601 (naive means UTC)."""
    if isinstance(value, bool):
        raise ValueError("t must be a number or an ISO-8601 string")
    if isinstance(value, (int, float)):
        # Epoch milliseconds are a common slip: anything past year 5000 in seconds is taken as ms.
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            from datetime import UTC

            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ValueError("t must be a number or an ISO-8601 string")


def read_capture(path: Path, errors: list[dict[str, Any]]) -> Iterator[CaptureRecord]:
    """Capture lines in file order; a bad line becomes an error entry, never an exception."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            raw = raw.strip()
            if not raw or raw.startswith(b"#"):
                continue
            try:
                data = orjson.loads(raw)
                if not isinstance(data, dict):
                    raise ValueError("a capture line must be a JSON object")
                source = data.get("source", "mqtt")
                if not isinstance(source, str):
                    raise ValueError("source must be a string")
                t = parse_time(data.get("t"))
            except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError) as err:
                errors.append({"t": None, "source": "capture", "message": f"{path.name}:{number}: {err}"})
                continue
            yield CaptureRecord(number, t, source, data)


def _mqtt_payload(data: dict[str, Any]) -> bytes:
    if "payload_base64" in data:
        return base64.b64decode(data["payload_base64"])
    payload = data.get("payload", "")
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return orjson.dumps(payload)


def _device_json(device: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "source", "manufacturer", "model", "area", "available", "components")
    return {k: device.get(k) for k in keys}


async def replay(path: Path, config: Config | None = None) -> ReplayResult:
    config = config or Config(mqtt={"enabled": True})
    errors: list[dict[str, Any]] = []
    records = list(read_capture(path, errors))
    start = min((r.t for r in records), default=0.0)
    clock = SimulatedClock(start)
    hub = Hub(clock, areas=config.areas)
    hub.bus.subscribe(
        InputRejected, lambda e: errors.append({"t": iso_utc(e.t), "source": e.source, "message": e.message})
    )
    mqtt = ReplayMqtt(clock)
    classes = {n: c for n, c in discover_adapters().items() if config.adapter_enabled(n)}
    unhandled: set[str] = set()
    async with Supervisor(hub, classes, config.adapters, mqtt=mqtt) as supervisor:
        # Let every adapter start (subscribe) before the first captured message.
        for _ in range(50):
            await asyncio.sleep(0)
            if all(h.state != "starting" and h.state != "stopped" for h in supervisor.health.values()):
                break
        for record in records:
            clock.advance_to(record.t)
            if record.source == "mqtt":
                topic = record.data.get("topic")
                if not isinstance(topic, str) or not topic:
                    errors.append({"t": iso_utc(record.t), "source": "capture",
                                   "message": f"{path.name}:{record.line}: mqtt line without a topic"})
                    continue
                try:
                    payload = _mqtt_payload(record.data)
                except (ValueError, TypeError) as err:
                    errors.append({"t": iso_utc(record.t), "source": "capture",
                                   "message": f"{path.name}:{record.line}: bad payload: {err}"})
                    continue
                mqtt.deliver(topic, payload, bool(record.data.get("retain", False)))
            elif record.source not in unhandled:
                unhandled.add(record.source)
                errors.append({"t": iso_utc(record.t), "source": "capture",
                               "message": f"no adapter in this gateway handles source {record.source!r} "
                                          f"(first at line {record.line}); those lines were skipped"})
            # Adapters may schedule work on the loop (tasks, futures): let it run between messages.
            await asyncio.sleep(0)
        for name, health in supervisor.health.items():
            if health.last_error:
                errors.append({"t": None, "source": name, "message": f"adapter {name}: {health.last_error}"})
    devices = [_device_json(hub.devices[i].as_dict(with_support=False)) for i in sorted(hub.devices)]
    return ReplayResult(devices=devices, errors=errors, published=mqtt.published)


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "null"
    return str(value)


def format_table(result: ReplayResult) -> str:
    """The human-readable report: one block per device, one line per capability."""
    from gateway.model import capability as capability_spec

    lines: list[str] = []
    lines.append(f"{len(result.devices)} devices")
    for device in result.devices:
        available = {True: "online", False: "OFFLINE", None: "availability unknown"}[device["available"]]
        what = " ".join(x for x in (device.get("manufacturer"), device.get("model")) if x)
        lines.append("")
        lines.append(f"{device['id']}  {device['name']!s}" + (f"  ({what})" if what else ""))
        lines.append(f"  area: {device['area'] or '-'}   {available}")
        for component, caps in sorted(device["components"].items()):
            for cap, attrs in sorted(caps.items()):
                spec = capability_spec(cap)
                parts = []
                for attr, value in attrs.items():
                    unit = spec.attributes[attr].unit if spec and attr in spec.attributes else None
                    parts.append(f"{attr}={_format_value(value)}{' ' + unit if unit and unit != '%' else unit or ''}")
                prefix = f"  {component}." if component != "main" else "  "
                lines.append(f"{prefix}{cap:<18} {', '.join(parts) if parts else '(no value reported yet)'}")
    if result.errors:
        lines.append("")
        lines.append(f"{len(result.errors)} errors")
        for error in result.errors[:50]:
            lines.append(f"  [{error['t'] or '-'}] {error['source']}: {error['message']}")
        if len(result.errors) > 50:
            lines.append(f"  … {len(result.errors) - 50} more (use --json to see all)")
    return "\n".join(lines)


__all__ = ["Command", "ReplayMqtt", "ReplayResult", "format_table", "parse_time", "read_capture", "replay"]
