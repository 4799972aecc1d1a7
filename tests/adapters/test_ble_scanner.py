"""bleak's real BlueZ backend against a mock BlueZ on a private D-Bus (tests/ble_mock): no radio needed.

Proves that an advertisement with BTHome service data, emitted by the mock as BlueZ would, becomes a
device with the right temperature and humidity in the hub, and that the scanner recovers when BlueZ and
its bus go away and come back. Without the tooling these skip with the reason, or fail when
``HEARTH_REQUIRE_BLUEZ_MOCK=1`` (CI sets it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapters.ble.adapter import BleAdapter
from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.sdk import AdapterNotReadyError
from tests.ble_mock.context import HubContext
from tests.ble_mock.fixtures import MockBluez, require_tooling

BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"
SENSOR = "A4:C1:38:8D:18:B2"
DEVICE = "ble:a4:c1:38:8d:18:b2"
# 0x02 temperature in 0.01 °C, 0x03 humidity in 0.01 % (bthome.io format example)
FRAME_25C = b"\x40\x02\xca\x09\x03\xbf\x13"  # 25.06 °C, 50.55 %
FRAME_22C = b"\x40\x02\xca\x08\x03\x88\x13"  # 22.50 °C, 50.00 %


@pytest.fixture(autouse=True)
def _collect_dead_bus_garbage() -> Iterator[None]:
    """When the bus dies under bleak, dbus-fast leaves a write future holding an unretrieved OSError,
    freed only once the test's event loop is gone. Its finalizer (which logs) must run here: run by the
    garbage collector in the middle of some later import's AST construction, it trips CPython 3.11's
    "SystemError: AST constructor recursion depth mismatch" (seen at pytest's terminal summary)."""
    yield
    gc.collect()


@pytest.fixture
async def mock_bluez(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MockBluez]:
    require_tooling()
    bluez = MockBluez(tmp_path / "bluez")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bluez.address)
    try:
        await bluez.start()
        yield bluez
    finally:
        bluez.close()


async def advertise_until(bluez: MockBluez, hub: Hub, frame: bytes, celsius: float, timeout_s: float = 10.0) -> None:
    """Advertise like a sensor does (repeatedly) until the hub shows the value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        with contextlib.suppress(Exception):  # the mock may be restarting
            await bluez.advertise(SENSOR, rssi=-64, name="ATC_8D18B2", service_data={BTHOME: frame})
        device = hub.devices.get(DEVICE)
        if device is not None and device.value("main", "temperature", "celsius") == celsius:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {celsius} °C from the mock within {timeout_s} s; device: "
                                 f"{device.as_dict() if device else None}")
        await asyncio.sleep(0.1)


async def test_bthome_advertisement_from_mock_bluez_becomes_a_device(mock_bluez: MockBluez) -> None:
    hub = Hub(SystemClock())
    ctx = HubContext(hub, "ble", {"adapter": "hci0", "scanning_mode": "active"})
    adapter = BleAdapter()
    await adapter.start(ctx)
    try:
        await advertise_until(mock_bluez, hub, FRAME_25C, 25.06)
        device = hub.devices[DEVICE]
        assert device.value("main", "humidity", "percent") == 50.55
        assert device.value("main", "connectivity", "rssi_dbm") == -64
        assert device.available is True and device.name == "ATC_8D18B2"
        assert ctx.bad_input == []
    finally:
        await ctx.cancel_tasks()
        await adapter.stop()


async def test_scanner_recovers_when_bluez_goes_away_and_comes_back(mock_bluez: MockBluez) -> None:
    hub = Hub(SystemClock())
    ctx = HubContext(hub, "ble", {"stall_restart_s": 2.0, "restart_backoff_min_s": 0.2,
                                  "restart_backoff_max_s": 1.0})
    adapter = BleAdapter()
    await adapter.start(ctx)
    try:
        await advertise_until(mock_bluez, hub, FRAME_25C, 25.06)
        mock_bluez.stop()  # BlueZ and the system bus die
        for _ in range(50):
            if adapter.scanner_state == "restarting":
                break
            await asyncio.sleep(0.1)
        assert adapter.scanner_state == "restarting"
        await asyncio.sleep(1.0)  # a few failed restarts while the bus is gone
        await mock_bluez.start()
        await advertise_until(mock_bluez, hub, FRAME_22C, 22.5, timeout_s=15.0)
        assert adapter.scanner_state == "running" and adapter.scanner_restarts >= 1
        assert hub.devices[DEVICE].value("main", "humidity", "percent") == 50.0
    finally:
        await ctx.cancel_tasks()  # raises if the watchdog task died
        await adapter.stop()


async def test_no_bluez_is_not_ready_with_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine without Bluetooth: no system bus at all. The supervisor backs off on AdapterNotReadyError.
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path / 'no_bus'}")
    hub = Hub(SystemClock())
    ctx = HubContext(hub, "ble", {})
    adapter = BleAdapter()
    with pytest.raises(AdapterNotReadyError, match=r"hci0 not usable.*enabled = false"):
        await adapter.start(ctx)
    assert ctx.tasks == []
