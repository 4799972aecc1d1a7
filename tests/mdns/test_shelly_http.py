"""Shelly Gen2+ over HTTP RPC and its WebSocket, against the fake Shelly on 127.0.0.1, configured by address
(``shelly_hosts``): no multicast, so these run everywhere."""

from __future__ import annotations

import asyncio

import pytest

from adapters.shelly.http import ShellyHttpDevice, ShellyRpcError, format_host, parse_host
from gateway.sdk import Command
from tests.mdns.fake_shelly import FakeShelly
from tests.mdns.helpers import running_gateway, wait_for

PLUS1PM = "shelly:shellyplus1pm-441793d69718"
PRO4PM = "shelly:shellypro4pm-a8032ab12345"


def _config(*fakes: FakeShelly, **extra: object) -> dict[str, object]:
    return {"shelly_hosts": [f.address for f in fakes], **extra}


async def test_plus1pm_and_pro4pm_become_devices_with_power_and_energy() -> None:
    async with FakeShelly("plus1pm") as plus, FakeShelly("pro4pm") as pro, running_gateway(_config(plus, pro)) as gw:
        await wait_for(lambda: PLUS1PM in gw.hub.devices and PRO4PM in gw.hub.devices, what="both devices")
        plus_dev, pro_dev = gw.hub.devices[PLUS1PM], gw.hub.devices[PRO4PM]
        assert plus_dev.source == "shelly" and plus_dev.model == "Plus1PM" and plus_dev.available is True
        assert set(plus_dev.support["main"]) >= {"on_off", "power_meter", "energy_meter"}
        assert plus_dev.value("main", "on_off", "on") is True
        assert plus_dev.value("main", "power_meter", "volts") == 236
        assert plus_dev.value("main", "energy_meter", "kwh") == 0
        # One component per channel, named as the MQTT transport names them (codec docstring).
        assert {"main", "switch_1", "switch_2", "switch_3", "input_0"} <= set(pro_dev.support)
        assert pro_dev.value("switch_2", "power_meter", "volts") == 233.2
        assert pro_dev.value("switch_3", "on_off", "on") is False
        assert "temperature" not in pro_dev.support["main"]  # a relay's own temperature is not the room's


async def test_command_changes_the_device_and_the_state_arrives_over_the_websocket_not_polling() -> None:
    async with FakeShelly("pro4pm") as pro, running_gateway(_config(pro)) as gw:
        await wait_for(lambda: gw.adapter.devices and gw.adapter.devices[0].mode == "live", what="the WebSocket")
        polls_before = pro.count("Shelly.GetStatus")
        result = await gw.hub.execute(Command(PRO4PM, "switch_2", "on_off", "on"), timeout_s=5)
        assert result.status == "confirmed", result
        assert pro.output(2) is True and pro.calls["http", "Switch.Set"] == 1
        assert gw.value(PRO4PM, "switch_2", "on_off", "on") is True
        assert pro.count("Shelly.GetStatus") == polls_before  # confirmed by the notification alone
        assert pro.notifications_sent == 1 and gw.adapter.devices[0].counters["notifications"] == 1

        result = await gw.hub.execute(Command(PRO4PM, "switch_2", "on_off", "toggle"), timeout_s=5)
        assert result.status in ("confirmed", "sent"), result
        await wait_for(lambda: gw.value(PRO4PM, "switch_2", "on_off", "on") is False, what="toggle")
        assert pro.count("Shelly.GetStatus") == polls_before


async def test_events_and_partial_status_from_the_websocket_are_applied() -> None:
    async with FakeShelly("pro4pm") as pro, running_gateway(_config(pro)) as gw:
        await wait_for(lambda: gw.adapter.devices and gw.adapter.devices[0].mode == "live", what="live")
        await pro.notify({"switch:1": {"apower": 120.5, "aenergy": {"total": 2500.0}}})
        await wait_for(lambda: gw.value(PRO4PM, "switch_1", "power_meter", "watts") == 120.5, what="power")
        assert gw.value(PRO4PM, "switch_1", "energy_meter", "kwh") == 2.5


async def test_digest_auth_over_http_and_websocket() -> None:
    password = "correct horse"
    async with FakeShelly("plus1pm", password=password) as plus, running_gateway(
            _config(plus, shelly_passwords={"shellyplus1pm-441793d69718": password})) as gw:
        await wait_for(lambda: gw.adapter.devices and gw.adapter.devices[0].mode == "live", what="live with auth")
        assert plus.http_auth_failures >= 1 and plus.ws_auth_failures == 1  # challenged, then let in
        assert plus.calls["http", "Shelly.GetStatus"] >= 1 and plus.calls["ws", "Shelly.GetStatus"] == 1
        result = await gw.hub.execute(Command(PLUS1PM, "main", "on_off", "off"), timeout_s=5)
        assert result.status == "confirmed", result
        assert plus.output(0) is False


async def test_a_password_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    password = "s3cret-never-shown"
    async with FakeShelly("plus1pm", password="another one") as plus, running_gateway(
            _config(plus, shelly_passwords={"shelly:shellyplus1pm-441793d69718": password})) as gw:
        await wait_for(lambda: gw.adapter.devices and gw.adapter.devices[0].last_error, what="the refusal")
        assert "refused the password" in (gw.adapter.devices[0].last_error or "")
        assert gw.supervisor.health["mdns"].state == "running"
        assert password not in caplog.text and password not in repr(gw.adapter.devices[0].__dict__)


async def test_without_a_password_the_device_says_what_is_missing() -> None:
    async with FakeShelly("plus1pm", password="pw") as plus, running_gateway(_config(plus)) as gw:
        await wait_for(lambda: gw.adapter.devices and gw.adapter.devices[0].last_error, what="an error")
        assert "shelly_passwords" in (gw.adapter.devices[0].last_error or "")
        assert PLUS1PM not in gw.hub.devices


async def test_without_a_websocket_the_device_is_polled() -> None:
    async with FakeShelly("plus1pm", websocket=False) as plus, running_gateway(
            _config(plus, poll_interval_s=0.2)) as gw:
        await wait_for(lambda: PLUS1PM in gw.hub.devices, what="the device")
        assert gw.adapter.devices[0].mode == "polling"
        plus.status["switch:0"]["apower"] = 42.0  # changed behind our back: only a poll can see it
        await wait_for(lambda: gw.value(PLUS1PM, "main", "power_meter", "watts") == 42.0, what="a poll")
        assert plus.count("Shelly.GetStatus") >= 2
        result = await gw.hub.execute(Command(PLUS1PM, "main", "on_off", "off"), timeout_s=3)
        assert result.status in ("confirmed", "timeout"), result  # confirmed by the next poll, if in time
        await wait_for(lambda: gw.value(PLUS1PM, "main", "on_off", "on") is False, what="the polled state")


async def test_an_unreachable_device_is_unavailable_and_comes_back() -> None:
    async with FakeShelly("plus1pm") as plus:
        port = plus.port
        async with running_gateway(_config(plus)) as gw:
            await wait_for(lambda: gw.hub.devices.get(PLUS1PM) and gw.hub.devices[PLUS1PM].available, what="up")
            await plus.__aexit__(None, None, None)
            await wait_for(lambda: gw.hub.devices[PLUS1PM].available is False, what="unavailable")
            assert PLUS1PM in gw.hub.devices  # unavailable, not deleted
            async with FakeShelly(port=port, state=plus):
                await wait_for(lambda: gw.hub.devices[PLUS1PM].available is True, timeout_s=15, what="back")


@pytest.mark.parametrize("garbage", [b"not json", b"[1, 2]", b'{"id": 1}', b'{"id": 1, "result": "nope"}',
                                     b'{"id": 1, "result": {"switch:0": "x", "wifi": []}}', b"\xff\xfe"])
async def test_malformed_rpc_answers_never_crash_the_adapter(garbage: bytes) -> None:
    async with FakeShelly("plus1pm") as plus:
        plus.garbage["Shelly.GetStatus"] = garbage
        async with running_gateway(_config(plus, poll_interval_s=0.2)) as gw:
            # Refused (an error, retried) or, for a status of nothing usable, a device with nothing to show.
            await wait_for(lambda: gw.adapter.devices and (gw.adapter.devices[0].last_error or gw.bad_input
                                                           or PLUS1PM in gw.hub.devices), what="the answer handled")
            assert gw.supervisor.health["mdns"].state == "running"
            if garbage == b"not json":
                del plus.garbage["Shelly.GetStatus"]
                await wait_for(lambda: gw.hub.devices.get(PLUS1PM) and gw.hub.devices[PLUS1PM].available,
                               timeout_s=15, what="recovery")


async def test_malformed_websocket_frames_are_reported_not_fatal() -> None:
    async with FakeShelly("plus1pm") as plus, running_gateway(_config(plus)) as gw:
        await wait_for(lambda: gw.adapter.devices and gw.adapter.devices[0].mode == "live", what="live")
        for junk in ("nope", "[]", '{"method": "NotifyStatus", "params": 5}', '{"method": "NotifyEvent"}',
                     '{"method": "NotifyStatus", "params": {"switch:0": {"apower": "lots"}}}'):
            await plus.send_raw(junk)
        await plus.notify({"switch:0": {"apower": 7.5}})
        await wait_for(lambda: gw.value(PLUS1PM, "main", "power_meter", "watts") == 7.5, what="the good frame")
        assert len(gw.bad_input) >= 4
        assert gw.supervisor.health["mdns"].state == "running" and gw.adapter.devices[0].mode == "live"


async def test_a_refused_call_carries_the_devices_message() -> None:
    async with FakeShelly("plus1pm") as plus, running_gateway(_config(plus)) as gw:
        await wait_for(lambda: gw.adapter.devices and gw.adapter.devices[0].mode == "live", what="live")
        # Switch 5 does not exist on a Plus 1PM: the device's own error comes back.
        with pytest.raises(ShellyRpcError, match="-105"):
            await gw.adapter.devices[0].call("Switch.Set", {"id": 5, "on": True})
        # A command for a component the device lacks never reaches it.
        result = await gw.adapter.execute(Command(PLUS1PM, "switch_7", "on_off", "on"))
        assert result.status == "rejected"


def test_host_parsing() -> None:
    assert parse_host("192.168.1.20") == ("192.168.1.20", 80)
    assert parse_host("192.168.1.20:8080") == ("192.168.1.20", 8080)
    assert parse_host("[fe80::1]:81") == ("fe80::1", 81)
    assert parse_host("shelly.lan") == ("shelly.lan", 80)
    for bad in ("", "a b", "host:0", "host:99999", "host:x"):
        with pytest.raises(ValueError):
            parse_host(bad)
    assert format_host("fe80::1", 80) == "[fe80::1]" and format_host("10.0.0.1", 8080) == "10.0.0.1:8080"


async def test_the_device_object_alone_speaks_rpc() -> None:
    import aiohttp

    from gateway.clock import SystemClock

    async with FakeShelly("pro4pm") as pro, aiohttp.ClientSession() as session:
        seen: list[object] = []
        device = ShellyHttpDevice(session, "127.0.0.1", pro.port, src="test", clock=SystemClock(),
                                  on_decoded=seen.append, on_available=lambda *_: None)
        info = await device.get_shelly()
        assert info["id"] == "shellypro4pm-a8032ab12345" and info["gen"] == 2
        assert (await device.call("Switch.Set", {"id": 1, "on": True})) == {"was_on": False}
        await asyncio.sleep(0)
