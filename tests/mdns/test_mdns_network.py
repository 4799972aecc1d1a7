"""Real mDNS on loopback, inside a private network namespace only (skipped elsewhere, see conftest.py).

Fake Shellys (aiohttp, real fixture payloads) are announced by the test with their own zeroconf, as a device on
the LAN would be; the gateway side is the real :class:`gateway.mdns.MdnsService` injected into the adapter under
the real supervisor: discovery -> device in the hub -> command -> fake device changes -> update over the
WebSocket (no poll) -> new address (same device) -> gone (unavailable, kept).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from gateway.mdns import GatewayAnnouncement, MdnsService, ServiceRecord
from gateway.sdk import Command
from tests.mdns.conftest import multicast
from tests.mdns.fake_shelly import FakeShelly
from tests.mdns.helpers import running_gateway, wait_for

pytestmark = multicast

LOOPBACK = ["127.0.0.1"]
PLUS1PM = "shelly:shellyplus1pm-441793d69718"
PRO4PM = "shelly:shellypro4pm-a8032ab12345"


def shelly_infos(fake: FakeShelly, txt: dict[str, str] | None = None) -> list[AsyncServiceInfo]:
    """What a Gen2+ Shelly announces: ``_shelly._tcp`` and ``_http._tcp``, instance name = device id."""
    properties = txt if txt is not None else {
        "gen": str(fake.device_info["gen"]), "app": fake.device_info["app"], "ver": fake.device_info["ver"],
        "id": fake.id}
    return [AsyncServiceInfo(t, f"{fake.id}.{t}", addresses=[socket.inet_aton(fake.host)], port=fake.port,
                             properties=properties, server=f"{fake.id}.local.")
            for t in ("_shelly._tcp.local.", "_http._tcp.local.")]


@pytest.fixture
async def lan() -> AsyncIterator[AsyncZeroconf]:
    """The other hosts of the (loopback) network: their own zeroconf, not the gateway's."""
    zc = AsyncZeroconf(interfaces=LOOPBACK)
    try:
        yield zc
    finally:
        await zc.async_close()


async def test_discovered_shellys_become_devices_and_are_switched_live(lan: AsyncZeroconf) -> None:
    async with FakeShelly("plus1pm") as plus, FakeShelly("pro4pm") as pro, MdnsService(LOOPBACK) as mdns, \
            running_gateway({"poll_interval_s": 3600}, mdns=mdns) as gw:
        for info in shelly_infos(plus) + shelly_infos(pro):
            await lan.async_register_service(info)
        await wait_for(lambda: PLUS1PM in gw.hub.devices and PRO4PM in gw.hub.devices, what="both devices")
        assert {"main", "switch_1", "switch_2", "switch_3"} <= set(gw.hub.devices[PRO4PM].support)
        assert set(gw.hub.devices[PLUS1PM].support["main"]) >= {"on_off", "power_meter", "energy_meter"}
        assert gw.value(PLUS1PM, "main", "power_meter", "volts") == 236
        await wait_for(lambda: all(d.mode == "live" for d in gw.adapter.devices), what="both WebSockets")
        assert len(gw.adapter.devices) == 2  # two services per device, one connection per device

        def pro_entry() -> dict:
            return {i["id"]: i for i in gw.adapter.discovered()}[PRO4PM]

        await wait_for(lambda: len(pro_entry()["types"]) == 2, what="both service types")
        assert pro_entry()["types"] == ["_http._tcp.local.", "_shelly._tcp.local."]
        assert pro_entry()["support"] == "supported" and pro_entry()["port"] == pro.port

        polls = pro.count("Shelly.GetStatus")
        result = await gw.hub.execute(Command(PRO4PM, "switch_1", "on_off", "on"), timeout_s=5)
        assert result.status == "confirmed", result
        assert pro.output(1) is True and gw.value(PRO4PM, "switch_1", "on_off", "on") is True
        assert pro.count("Shelly.GetStatus") == polls and pro.notifications_sent == 1  # not polled: notified


async def test_a_device_that_changes_address_is_the_same_device(lan: AsyncZeroconf) -> None:
    async with FakeShelly("plus1pm") as plus, MdnsService(LOOPBACK) as mdns, \
            running_gateway({"poll_interval_s": 3600}, mdns=mdns) as gw:
        infos = shelly_infos(plus)
        for info in infos:
            await lan.async_register_service(info)
        await wait_for(lambda: gw.adapter.devices and gw.adapter.devices[0].mode == "live", what="live")
        # A new DHCP lease: the same device (same state) answers at another address and port.
        async with FakeShelly(host="127.0.0.2", state=plus) as moved:
            await plus.__aexit__(None, None, None)
            for info in shelly_infos(moved):
                await lan.async_update_service(info)
            await wait_for(lambda: gw.adapter.devices[0].address == moved.address, what="the new address")
            await wait_for(lambda: gw.adapter.devices[0].mode == "live", what="live again")
            assert list(gw.hub.devices) == [PLUS1PM] and len(gw.adapter.discovered()) == 1
            # zeroconf may list the old address a moment longer (RFC 6762 10.2 flushes it after 1 s).
            assert gw.adapter.discovered()[0]["addresses"][0] == "127.0.0.2"
            result = await gw.hub.execute(Command(PLUS1PM, "main", "on_off", "off"), timeout_s=5)
            assert result.status == "confirmed" and moved.output(0) is False


async def test_a_device_that_disappears_is_unavailable_not_deleted(lan: AsyncZeroconf) -> None:
    async with FakeShelly("pro4pm") as pro, MdnsService(LOOPBACK) as mdns, \
            running_gateway({"poll_interval_s": 3600}, mdns=mdns) as gw:
        infos = shelly_infos(pro)
        for info in infos:
            await lan.async_register_service(info)
        await wait_for(lambda: gw.hub.devices.get(PRO4PM) and gw.hub.devices[PRO4PM].available, what="up")
        for info in infos:
            await lan.async_unregister_service(info)  # the goodbye (TTL 0) of a device leaving
        await pro.__aexit__(None, None, None)
        await wait_for(lambda: gw.hub.devices[PRO4PM].available is False, what="unavailable")
        assert PRO4PM in gw.hub.devices and gw.adapter.discovered()[0]["available"] is False
        result = await gw.hub.execute(Command(PRO4PM, "main", "on_off", "on"))
        assert result.status == "unavailable"


async def test_malformed_txt_records_never_crash_the_adapter(lan: AsyncZeroconf) -> None:
    async with FakeShelly("plus1pm") as plus, MdnsService(LOOPBACK) as mdns, \
            running_gateway({"poll_interval_s": 3600}, mdns=mdns) as gw:
        junk = {b"gen": b"\xff\xfe", b"id": None, b"app": b"\x00\x01" * 100, b"a=b": b"c"}
        await lan.async_register_service(AsyncServiceInfo(
            "_hap._tcp.local.", "Broken \u00e9 accessory._hap._tcp.local.", addresses=[socket.inet_aton("127.0.0.1")],
            port=1, properties=junk, server="broken.local."))
        await lan.async_register_service(AsyncServiceInfo(
            "_esphomelib._tcp.local.", "no-txt._esphomelib._tcp.local.", addresses=[socket.inet_aton("127.0.0.1")],
            port=6053, properties={}, server="no-txt.local."))
        for info in shelly_infos(plus, txt={"gen": "\u00ff", "id": ""}):
            await lan.async_register_service(info)
        await wait_for(lambda: len(gw.adapter.discovered()) == 3, what="three entries")
        await wait_for(lambda: PLUS1PM in gw.hub.devices, what="the Shelly, named by its instance")
        assert gw.supervisor.health["mdns"].state == "running"


async def test_the_adapter_can_open_its_own_zeroconf(lan: AsyncZeroconf) -> None:
    async with FakeShelly("plus1pm") as plus, running_gateway(
            {"own_zeroconf": True, "interfaces": LOOPBACK, "poll_interval_s": 3600}) as gw:
        for info in shelly_infos(plus):
            await lan.async_register_service(info)
        await wait_for(lambda: PLUS1PM in gw.hub.devices, what="the device")


async def test_the_gateway_announces_itself_and_says_goodbye() -> None:
    seen: list[tuple[str, ServiceRecord]] = []
    async with MdnsService(LOOPBACK) as gateway_mdns, MdnsService(LOOPBACK) as app_mdns:
        unsubscribe = app_mdns.browse(["_hearth._tcp", "_http._tcp"], lambda c, r: seen.append((c, r)))
        async with GatewayAnnouncement(gateway_mdns, name="Hearth test", port=8470, version="0.1.0",
                                       host="127.0.0.1", auth_required=True) as announcement:
            assert len(announcement.infos) == 2
            await wait_for(lambda: {r.type for c, r in seen if c == "added"} >= {"_hearth._tcp.local.",
                                                                              "_http._tcp.local."}, what="both")
            record = next(r for c, r in seen if r.type == "_hearth._tcp.local.")
            assert record.instance == "Hearth test" and record.port == 8470 and record.addresses == ("127.0.0.1",)
            assert record.properties[b"version"] == b"0.1.0" and record.properties[b"api"] == b"/api"
            assert record.properties[b"auth"] == b"bearer"
        await wait_for(lambda: any(c == "removed" and r.type == "_hearth._tcp.local." for c, r in seen),
                       what="the goodbye")
        unsubscribe()
