"""An AdapterContext over a real Hub for the BLE tests, recording bad input (like the zigbee2mqtt tests')."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

from gateway.hub import Hub
from gateway.mqtt import topic_matches
from gateway.sdk import Device, DeviceEventUpdate, DeviceInfo, MessageCallback, MqttClient, Unsubscribe, Update


class FakeMqtt:
    """In-memory MQTT session: real topic-filter matching, no broker."""

    def __init__(self) -> None:
        self.subscriptions: list[tuple[str, MessageCallback]] = []

    @property
    def connected(self) -> bool:
        return True

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0) -> Unsubscribe:
        entry = (topic_filter, callback)
        self.subscriptions.append(entry)
        return lambda: self.subscriptions.remove(entry)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        raise AssertionError("BLE adapters never publish")

    def deliver(self, topic: str, payload: Any) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        for topic_filter, callback in list(self.subscriptions):
            if topic_matches(topic_filter, topic):
                callback(topic, body, False)


class MemoryStorage:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterable[tuple[str, Any]]:
        return list(self.data.items())


class HubContext:
    def __init__(self, hub: Hub, name: str, config: dict[str, Any], mqtt: MqttClient | None = None) -> None:
        self.name = name
        self.config = config
        self.log = logging.getLogger(f"test.{name}")
        self.clock = hub.clock
        self.mqtt = mqtt
        self.storage = MemoryStorage()
        self.hub = hub
        self.bad_input: list[str] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def upsert_device(self, info: DeviceInfo) -> Device:
        return self.hub.upsert_device(info, self.name)

    def remove_device(self, device_id: str) -> None:
        self.hub.remove_device(device_id)

    def push(self, updates: Iterable[Update]) -> None:
        self.hub.apply(updates)

    def push_event(self, event: DeviceEventUpdate) -> None:
        self.hub.emit_event(event)

    def set_available(self, device_id: str, available: bool | None) -> None:
        self.hub.set_available(device_id, available)

    def report_bad_input(self, message: str) -> None:
        self.bad_input.append(message)
        self.hub.reject_input(self.name, message)

    def device(self, device_id: str) -> Device | None:
        return self.hub.devices.get(device_id)

    def devices(self) -> list[Device]:
        return [d for d in self.hub.devices.values() if d.adapter == self.name]

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str) -> Any:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.append(task)
        return task

    async def cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for task in self.tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        self.tasks.clear()
