"""The pure discovery registry: service records (from zeroconf or a capture's ``mdns`` lines) in, discovered
entries out. TXT keys and values in these tests are the ones of protocols.md section 4 (Shelly docs, ESPHome's
mdns_component.cpp, homekit_python #17, connectedhomeip TxtFields.h, fx_cast #159)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.shelly.discovery import BROWSED_TYPES, DiscoveryRegistry, ServiceRecord, decode_txt
from gateway.mdns import service_record_from_capture

SHELLY = "_shelly._tcp.local."
HTTP = "_http._tcp.local."
PLUS1PM_TXT = {b"gen": b"2", b"app": b"Plus1PM", b"ver": b"1.3.2", b"id": b"shellyplus1pm-441793d69718"}


def shelly(addresses: tuple[str, ...] = ("192.168.1.217",), port: int = 80, type_: str = SHELLY,
           txt: dict | None = None) -> ServiceRecord:
    return ServiceRecord(type_, "shellyplus1pm-441793d69718", addresses, port,
                         PLUS1PM_TXT if txt is None else txt, "shellyplus1pm-441793d69718.local.")


def test_browsed_types_cover_the_known_families() -> None:
    assert set(BROWSED_TYPES) == {"_shelly._tcp.local.", "_http._tcp.local.", "_esphomelib._tcp.local.",
                                  "_hap._tcp.local.", "_matter._tcp.local.", "_matterc._udp.local.",
                                  "_googlecast._tcp.local."}


def test_a_shelly_on_two_service_types_is_one_supported_entry() -> None:
    registry = DiscoveryRegistry()
    first = registry.observe(shelly(), 100.0)
    second = registry.observe(shelly(type_=HTTP), 101.0)
    assert first is not None and first.new and second is not None and not second.new
    assert list(registry.entries) == ["shelly:shellyplus1pm-441793d69718"]
    item = registry.as_list()[0]
    assert item["support"] == "supported" and item["adapter"] == "mdns"
    assert item["device_id"] == "shelly:shellyplus1pm-441793d69718" and item["model"] == "Plus1PM"
    assert item["types"] == [HTTP, SHELLY] and item["address"] == "192.168.1.217" and item["port"] == 80
    assert item["txt"] == {"gen": "2", "app": "Plus1PM", "ver": "1.3.2", "id": "shellyplus1pm-441793d69718"}
    assert item["first_seen"] == "1970-01-01T00:01:40.000Z" and item["last_seen"] == "1970-01-01T00:01:41.000Z"


def test_a_new_address_updates_the_entry_never_duplicates_it() -> None:
    registry = DiscoveryRegistry()
    registry.observe(shelly(), 1.0)
    moved = registry.observe(shelly(addresses=("192.168.1.50",), port=8080), 2.0)
    assert moved is not None and moved.moved and not moved.new
    assert len(registry.entries) == 1
    entry = registry.entries["shelly:shellyplus1pm-441793d69718"]
    assert entry.addresses == ("192.168.1.50",) and entry.port == 8080
    same = registry.observe(shelly(addresses=("192.168.1.50",), port=8080), 3.0)
    assert same is not None and not same.moved


def test_a_device_that_goes_away_is_unavailable_and_kept() -> None:
    registry = DiscoveryRegistry()
    registry.observe(shelly(), 1.0)
    registry.observe(shelly(type_=HTTP), 1.0)
    entry = registry.remove(SHELLY, "shellyplus1pm-441793d69718", 5.0)
    assert entry is not None and entry.available  # still announced on _http._tcp
    entry = registry.remove(HTTP, "ShellyPlus1PM-441793D69718", 6.0)  # names are case-insensitive
    assert entry is not None and not entry.available and entry.last_seen == 1.0
    assert registry.as_list()[0]["available"] is False
    back = registry.observe(shelly(), 9.0)
    assert back is not None and back.came_back and back.entry.available
    assert registry.remove(SHELLY, "never-seen", 1.0) is None


def test_the_shelly_id_comes_from_the_instance_name_when_txt_has_none() -> None:
    registry = DiscoveryRegistry()
    registry.observe(ServiceRecord(SHELLY, "ShellyPro4PM-A8032AB12345", ("10.0.0.9",), 80, {}), 0.0)
    assert list(registry.entries) == ["shelly:shellypro4pm-a8032ab12345"]


def test_gen1_shelly_is_seen_only_and_other_web_servers_are_ignored() -> None:
    registry = DiscoveryRegistry()
    gen1_txt = {b"id": b"shellyplug-s-7c87ce64ea9f", b"app": b"shellyplug-s", b"arch": b"esp8266",
                b"fw_id": b"20230913-112003/v1.14.0-gcb84623", b"discoverable": b"true"}
    gen1 = registry.observe(ServiceRecord(HTTP, "shellyplug-s-7C87CE64EA9F", ("10.0.0.3",), 80, gen1_txt), 0.0)
    assert gen1 is not None and gen1.entry.support == "seen only" and gen1.entry.adapter is None
    assert registry.observe(ServiceRecord(HTTP, "Brother HL-L2350DW", ("10.0.0.4",), 80, {b"path": b"/"}), 0.0) \
        is None
    assert registry.observe(ServiceRecord(HTTP, "router", ("10.0.0.1",), 80, {b"gen": b"2"}), 0.0) is None


def test_other_families_are_listed_as_seen_only_with_hardware_ids() -> None:
    registry = DiscoveryRegistry()
    records = [
        ServiceRecord("_esphomelib._tcp.local.", "kitchen-sensor", ("10.0.0.5",), 6053,
                      {b"friendly_name": b"Kitchen sensor", b"version": b"2024.6.1", b"mac": b"a0b765123456",
                       b"platform": b"ESP32", b"board": b"esp32dev", b"network": b"wifi"}),
        ServiceRecord("_hap._tcp.local.", "Eve Energy 50FF", ("10.0.0.6",), 80,
                      {b"c#": b"2", b"ff": b"0", b"id": b"A1:B2:C3:D4:E5:F6", b"md": b"Eve Energy", b"pv": b"1.1",
                       b"s#": b"1", b"sf": b"1", b"ci": b"7"}),
        ServiceRecord("_matterc._udp.local.", "DD4B1E0AC6F58C21", ("fe80::1",), 5540,
                      {b"D": b"3840", b"VP": b"65521+32769", b"CM": b"1", b"DN": b"Light"}),
        ServiceRecord("_googlecast._tcp.local.", "Google-Nest-Mini-1234", ("10.0.0.7",), 8009,
                      {b"id": b"3a1ab6a4f1e1d7c1b2a8f4e0c7d6e5f4", b"md": b"Google Nest Mini", b"fn": b"Kitchen"}),
    ]
    for record in records:
        assert registry.observe(record, 0.0) is not None
    items = {i["family"]: i for i in registry.as_list()}
    assert items["esphome"]["id"] == "esphome:a0b765123456" and items["esphome"]["name"] == "Kitchen sensor"
    assert items["homekit"]["id"] == "homekit:a1:b2:c3:d4:e5:f6" and items["homekit"]["model"] == "Eve Energy"
    assert items["matter"]["txt"]["vp"] == "65521+32769" and items["matter"]["name"] == "Light"
    assert items["googlecast"]["name"] == "Kitchen"
    assert all(i["support"] == "seen only" and i["adapter"] is None for i in items.values())


def test_capture_lines_become_records() -> None:
    record = service_record_from_capture({
        "t": 1718608889, "source": "mdns", "type": "_shelly._tcp.local.",
        "name": "shellyplus1pm-441793d69718._shelly._tcp.local.", "addresses": ["192.168.1.217"], "port": 80,
        "properties": {"gen": "2", "app": "Plus1PM", "ver": "1.3.2", "id": "shellyplus1pm-441793d69718"},
    })
    assert record.instance == "shellyplus1pm-441793d69718" and record.type == SHELLY
    registry = DiscoveryRegistry()
    assert registry.observe(record, 0.0) is not None
    assert registry.as_list()[0]["device_id"] == "shelly:shellyplus1pm-441793d69718"
    assert service_record_from_capture({"type": "_hap._tcp", "name": "x", "properties": {"c#": 2}}).type \
        == "_hap._tcp.local."


@pytest.mark.parametrize(("line", "field"), [
    ({"name": "x"}, "type"),
    ({"type": "_hap._tcp", "name": ""}, "name"),
    ({"type": "_hap._tcp", "name": "x", "addresses": "10.0.0.1"}, "addresses"),
    ({"type": "_hap._tcp", "name": "x", "addresses": ["not-an-ip"]}, "addresses"),
    ({"type": "_hap._tcp", "name": "x", "port": 70000}, "port"),
    ({"type": "_hap._tcp", "name": "x", "properties": [1]}, "properties"),
    ({"type": "_hap._tcp", "name": "x", "properties": {"a": {"b": 1}}}, "properties.a"),
])
def test_bad_capture_lines_name_the_field(line: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        service_record_from_capture(line)


def test_txt_decoding_is_lenient_and_bounded() -> None:
    txt, problems = decode_txt({b"Gen": b"2", b"GEN": b"3", b"id": b"\xff\xfeabc", b"": b"x", b"flag": None,
                                b"bell": b"a\x07b", b"a=b": b"c", 5: b"five"})
    assert txt["gen"] == "2"  # the first of duplicate keys wins (RFC 6763 6.4)
    assert txt["id"] == "\ufffd\ufffdabc" and txt["flag"] is None and txt["bell"] == "a\ufffdb"
    assert txt["5"] == "five"
    assert len(problems) == 2  # the empty key and the key with "="
    assert decode_txt("garbage")[0] == {} and decode_txt(None) == ({}, [])
    big, problems = decode_txt({f"k{i}".encode(): b"v" * 1000 for i in range(100)})
    assert len(big) == 64 and all(len(v or "") == 255 for v in big.values()) and problems


def test_the_registry_stays_bounded() -> None:
    registry = DiscoveryRegistry(max_entries=10)
    for i in range(25):
        registry.observe(ServiceRecord("_hap._tcp.local.", f"thing {i}", ("10.0.0.1",), 80, {}), float(i))
    assert len(registry.entries) == 10 and "homekit:thing 24" in registry.entries


_txt_keys = st.one_of(st.binary(max_size=80), st.text(max_size=80), st.integers(), st.none())
_txt_values = st.one_of(st.binary(max_size=300), st.text(max_size=300), st.none(), st.integers(), st.floats(),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers()))


@settings(max_examples=400, deadline=None)
@given(
    type_=st.sampled_from([*BROWSED_TYPES, "_other._tcp.local."]),
    instance=st.text(max_size=300),
    addresses=st.lists(st.one_of(st.ip_addresses().map(str), st.text(max_size=20)), max_size=20).map(tuple),
    port=st.one_of(st.none(), st.integers(min_value=-5, max_value=70000)),
    properties=st.one_of(st.dictionaries(_txt_keys, _txt_values, max_size=80), st.none(), st.text(), st.integers()),
    remove_first=st.booleans(),
)
def test_malformed_records_never_crash_the_registry(type_: str, instance: str, addresses: tuple[str, ...],
                                                    port: int | None, properties: object,
                                                    remove_first: bool) -> None:
    registry = DiscoveryRegistry(max_entries=5)
    record = ServiceRecord(type_, instance, addresses, port, properties, None)  # type: ignore[arg-type]
    if remove_first:
        registry.remove(type_, instance, 0.0)
    observation = registry.observe(record, 1.0)
    registry.observe(record, 2.0)
    registry.remove(type_, instance, 3.0)
    for item in registry.as_list():
        assert item["available"] is False
        assert item["port"] is None or 0 < item["port"] <= 65535
        assert all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in item["txt"].items())
        assert len(item["txt"]) <= 64
    if observation is not None:
        assert all(isinstance(p, str) for p in observation.problems)
