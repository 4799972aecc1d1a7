"""Nothing dropped without a word: every BLE advertisement of a known format is applied or reported, with its reason.

Vectors (tests/fixtures/ble/README.md names each source and commit):
- ``xiaomi_ble_vectors.jsonl``: every advertisement of ``Bluetooth-Devices/xiaomi-ble`` ``tests/test_parser.py``
  (509f516e), with its test's name, address and bind key;
- ``bthome_ble_vectors.jsonl``: the same for ``Bluetooth-Devices/bthome-ble`` ``tests/test_parser_v2.py`` (d55bd3a);
- pvvx thermometer frames built from ``pvvx/ATC_MiThermometer`` ``src/bthome_beacon.h`` (7363cc80), and the
  real pvvx custom-format frame of OpenMQTTGateway issue #1393 (``gateways.jsonl`` line 4).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.ble import _mibeacon
from adapters.ble.adapter import BleAdapter
from adapters.ble.decoders import (
    BTHOME_UUID,
    ENVIRONMENTAL_SENSING_UUID,
    MIBEACON_UUID,
    Advertisement,
    DecodeResult,
    DecoderState,
    DropReason,
    KeyRing,
    Severity,
    _decode,
    decode_advertisement,
    normalize_mac,
)
from adapters.ble.devices import NOTE_EVERY_S
from gateway.clock import SimulatedClock
from gateway.hub import Hub
from gateway.sdk import NOTES_LOGGER, capability
from tests.ble_mock.context import HubContext

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ble"
T0 = 1_705_302_000.0


def _vectors(name: str) -> dict[str, list[dict[str, Any]]]:
    """test name -> its advertisements, in order (the first line of the file names the source)."""
    lines = (FIXTURES / name).read_text().splitlines()
    source = json.loads(lines[0])
    assert source["commit"] and source["source"].startswith("Bluetooth-Devices/")
    out: dict[str, list[dict[str, Any]]] = {}
    for line in lines[1:]:
        row = json.loads(line)
        out.setdefault(row["test"], []).append(row)
    return out


XIAOMI = _vectors("xiaomi_ble_vectors.jsonl")
BTHOME = _vectors("bthome_ble_vectors.jsonl")

# xiaomi-ble test_Xiaomi_RTCGQ02LM_light_and_motion / _timeout_motion: an encrypted (MiBeacon v5) motion
# sensor; the second says "no motion" (object 0x101B), which was dropped silently before.
MOTION_SENSOR = "18:C2:3C:20:8E:77"
MOTION_KEY = "4960bb9f8711b4ffd7df1756d11427ae"
MOTION = bytes.fromhex(XIAOMI["test_Xiaomi_RTCGQ02LM_light_and_motion"][0]["data"])
NO_MOTION = bytes.fromhex(XIAOMI["test_Xiaomi_RTCGQ02LM_timeout_motion"][0]["data"])


def mi(address: str, data: bytes, t: float = T0, name: str | None = None) -> Advertisement:
    return Advertisement.create(address, -60, name, {MIBEACON_UUID: data}, {}, t)


def bt(address: str, data: bytes, t: float = T0, name: str | None = None) -> Advertisement:
    return Advertisement.create(address, -60, name, {BTHOME_UUID: data}, {}, t)


def vector(test: str, n: int = 0, t: float = T0, source: dict[str, list[dict[str, Any]]] | None = None
           ) -> Advertisement:
    table = source if source is not None else (XIAOMI if test in XIAOMI else BTHOME)
    row = table[test][n]
    uuid = MIBEACON_UUID if table is XIAOMI else BTHOME_UUID
    return Advertisement.create(row["address"], -60, row["name"], {uuid: bytes.fromhex(row["data"])}, {}, t)


def values(result: DecodeResult) -> dict[tuple[str, str, str], Any]:
    return {(u.component, u.capability, u.attribute): u.value for u in result.updates}


def reasons(result: DecodeResult) -> list[tuple[str, str]]:
    return [(d.reason.value, d.severity.value) for d in result.drops]


class Notes(logging.Handler):
    """What the adapters said as notes (gateway.sdk.NOTES_LOGGER), as `hearth replay` collects them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def notes() -> Any:
    handler = Notes()
    logger = logging.getLogger(NOTES_LOGGER)
    saved = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(saved)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
def hub(clock: SimulatedClock) -> Hub:
    return Hub(clock)


async def start_ble(hub: Hub, **config: Any) -> tuple[BleAdapter, HubContext]:
    ctx = HubContext(hub, "ble", {"scanner": False, **config})
    adapter = BleAdapter()
    await adapter.start(ctx)
    return adapter, ctx


def dropped(adapter: BleAdapter, address: str) -> dict[str, int]:
    return adapter.drops()["by_device"].get(f"ble:{normalize_mac(address)}", {})


# ------------------------------------------------------------------------------------- no motion


async def test_no_motion_from_an_encrypted_rtcgq02lm_clears_occupancy(hub: Hub, clock: SimulatedClock) -> None:
    adapter, ctx = await start_ble(hub, keys={MOTION_SENSOR: MOTION_KEY})
    adapter.feed(mi(MOTION_SENSOR, MOTION))
    sensor = hub.devices["ble:18:c2:3c:20:8e:77"]
    assert (sensor.manufacturer, sensor.model) == ("Xiaomi", "RTCGQ02LM")
    assert sensor.value("main", "occupancy", "occupied") is True
    clock.advance_to(T0 + 90)
    adapter.feed(mi(MOTION_SENSOR, NO_MOTION, T0 + 90))
    assert sensor.value("main", "occupancy", "occupied") is False
    assert ctx.bad_input == []
    # A motion sensor is silent while nothing moves: silence is not "offline" after the usual 10 minutes.
    clock.advance_to(T0 + 3 * 3600)
    assert sensor.available is True
    await adapter.stop()


def test_no_motion_objects_of_every_motion_sensor() -> None:
    cases = [  # (xiaomi-ble test, occupied)
        ("test_Xiaomi_RTCGQ02LM_timeout_motion", False),  # 0x101B no motion (timeout)
        ("test_Xiaomi_HS1BB_no_motion", False),  # 0x4818 no motion for N s
        ("test_Xiaomi_HS1BB_MI_obj4818", False),
        ("test_Xiaomi_XMOSB01XS_OCCUPANCY", False),  # 0x484E occupancy status
        ("test_Xiaomi_ES3_occupancy_off", False),
        ("test_Xiaomi_ES3_occupancy_on", True),
        ("test_Xiaomi_XMPIRO2SXS", True),  # 0x4A08 motion with lux
        ("test_Xiaomi_CGPR1", True),  # 0x000F motion with lux
    ]
    for test, occupied in cases:
        row = XIAOMI[test][0]
        keys = KeyRing({row["address"]: row["key"]} if row["key"] else {})
        result = decode_advertisement(vector(test), keys, DecoderState())
        assert values(result)[("main", "occupancy", "occupied")] is occupied, test


# ------------------------------------------------------------------------------ one test per reason


async def test_no_key_is_a_note_a_counter_and_a_log_line(hub: Hub, caplog: Any, notes: list[str]) -> None:
    adapter, ctx = await start_ble(hub)
    with caplog.at_level(logging.INFO, logger="test.ble"):
        adapter.feed(mi(MOTION_SENSOR, NO_MOTION))
    assert "ble:18:c2:3c:20:8e:77" not in hub.devices  # maybe a neighbour's: no device, but a word
    assert dropped(adapter, MOTION_SENSOR) == {"no_key": 1}
    assert ctx.bad_input == []
    assert len(notes) == 1 and "no bind key" in notes[0] and "[no_key]" in notes[0]
    assert any("no bind key" in r.getMessage() for r in caplog.records)


async def test_wrong_key_is_a_problem_and_a_counter(hub: Hub) -> None:
    # xiaomi-ble test_bindkey_wrong: an RTCGQ02LM frame and a key that is not its own
    row = XIAOMI["test_bindkey_wrong"][0]
    adapter, ctx = await start_ble(hub, keys={row["address"]: row["key"]})
    adapter.feed(vector("test_bindkey_wrong"))
    assert dropped(adapter, row["address"]) == {"decryption_failed": 1}
    assert any("decryption failed" in p for p in ctx.bad_input)
    # BTHome (bthome-ble test_bindkey_wrong)
    row = BTHOME["test_bindkey_wrong"][0]
    result = decode_advertisement(vector("test_bindkey_wrong", source=BTHOME), KeyRing({row["address"]: row["key"]}),
                                  DecoderState())
    assert reasons(result) == [("decryption_failed", "problem")]
    # A 12-byte (MiBeacon v2/v3) key where the device needs its 16-byte one
    legacy = decode_advertisement(mi(MOTION_SENSOR, NO_MOTION), KeyRing({MOTION_SENSOR: "00" * 12}), DecoderState())
    assert reasons(legacy) == [("decryption_failed", "problem")] and "16-byte" in legacy.problems[0]


async def test_a_replayed_counter_is_a_problem_and_a_late_copy_a_duplicate(hub: Hub) -> None:
    adapter, ctx = await start_ble(hub, keys={MOTION_SENSOR: MOTION_KEY})
    adapter.feed(mi(MOTION_SENSOR, NO_MOTION, T0))  # counter 0x692
    adapter.feed(mi(MOTION_SENSOR, MOTION, T0 + 2))  # counter 0x68c, two seconds later: a late copy
    adapter.feed(mi(MOTION_SENSOR, MOTION, T0 + 600))  # the same old frame ten minutes later: replayed
    assert dropped(adapter, MOTION_SENSOR) == {"duplicate": 1, "replay": 1}
    assert hub.devices["ble:18:c2:3c:20:8e:77"].value("main", "occupancy", "occupied") is False
    assert len(ctx.bad_input) == 1 and "counter went back" in ctx.bad_input[0]
    # BTHome: bthome-ble test_decreasing_encryption_counter (1122867, then 1122866)
    row = BTHOME["test_decreasing_encryption_counter"][0]
    keys, state = KeyRing({row["address"]: row["key"]}), DecoderState()
    first = decode_advertisement(vector("test_decreasing_encryption_counter", 0, T0), keys, state)
    second = decode_advertisement(vector("test_decreasing_encryption_counter", 1, T0 + 60), keys, state)
    assert first.decoded and not second.decoded and reasons(second) == [("replay", "problem")]


async def test_a_duplicate_is_counted_and_nothing_else(hub: Hub, notes: list[str]) -> None:
    # bthome-ble test_same_service_data: the same encrypted frame twice
    row = BTHOME["test_same_service_data"][0]
    adapter, ctx = await start_ble(hub, keys={row["address"]: row["key"]})
    adapter.feed(vector("test_same_service_data", 0, T0, BTHOME))
    adapter.feed(vector("test_same_service_data", 1, T0 + 5, BTHOME))
    assert dropped(adapter, row["address"]) == {"duplicate": 1}
    assert ctx.bad_input == [] and notes == []


def test_a_downgrade_is_a_problem() -> None:
    # bthome-ble test_encryption_downgrade_fails idea: a plain frame from a device that has a key
    row = BTHOME["test_bthome_pressure"][0]
    result = decode_advertisement(vector("test_bthome_pressure", source=BTHOME),
                                  KeyRing({row["address"]: "814aac74c4f17b6c1581e1ab87816b99"}), DecoderState())
    assert reasons(result) == [("downgrade", "problem")]


async def test_an_unknown_object_is_a_note_with_its_id(hub: Hub, notes: list[str]) -> None:
    # xiaomi-ble test_Xiaomi_LYWSD03MMC (plain 0x100D temperature + humidity) with an object 0x9999 appended
    row = XIAOMI["test_Xiaomi_LYWSD03MMC"][0]
    frame = bytes.fromhex(row["data"]) + bytes.fromhex("999902abcd")
    adapter, ctx = await start_ble(hub)
    adapter.feed(mi(row["address"], frame))
    device = hub.devices[f"ble:{normalize_mac(row['address'])}"]
    assert device.value("main", "temperature", "celsius") == 27.2  # the rest of the frame is applied
    assert dropped(adapter, row["address"]) == {"unknown_object": 1}
    assert any("unknown MiBeacon object 0x9999" in n for n in notes) and ctx.bad_input == []
    # BTHome stops at an unknown id (the format says receivers must): bthome-ble test_bthome_wrong_object_id
    result = decode_advertisement(vector("test_bthome_battery_wrong_object_id_humidity", source=BTHOME), KeyRing(),
                                  DecoderState())
    assert values(result) == {("main", "battery", "percent"): 93}
    assert reasons(result) == [("unknown_object", "problem")] and "0xfe" in result.problems[0]


async def test_an_object_without_a_capability_is_a_note(hub: Hub, notes: list[str]) -> None:
    # xiaomi-ble test_Xiaomi_HHCCJCY01_all_values: soil conductivity (0x1009) has no capability; soil moisture
    # (0x1008) has one now
    adapter, ctx = await start_ble(hub)
    for n in range(4):
        adapter.feed(vector("test_Xiaomi_HHCCJCY01_all_values", n, T0 + 61 * n))
    row = XIAOMI["test_Xiaomi_HHCCJCY01_all_values"][0]
    assert dropped(adapter, row["address"]) == {"not_used": 1}
    assert any("0x1009 (soil conductivity" in n for n in notes)
    device = hub.devices[f"ble:{normalize_mac(row['address'])}"]
    assert device.value("main", "temperature", "celsius") == 24.4 and ctx.bad_input == []
    assert device.value("main", "soil_moisture", "percent") == 64
    # BTHome (bthome-ble test_bthome_mass_kilograms)
    result = decode_advertisement(vector("test_bthome_mass_kilograms", source=BTHOME), KeyRing(), DecoderState())
    assert reasons(result) == [("not_used", "note")] and "0x06 mass kg" in result.notes[0]


def test_too_short_is_a_problem() -> None:
    for test in ("test_too_short_encryption_advertisement", "test_bthome_invalid_object_payload_data_length"):
        row = BTHOME[test][0]
        keys = KeyRing({row["address"]: row["key"]} if row["key"] else {})
        result = decode_advertisement(vector(test, source=BTHOME), keys, DecoderState())
        assert ("too_short", "problem") in reasons(result), test
    cut = decode_advertisement(mi("A4:C1:38:B4:94:4C", b"P0[\x05"), KeyRing(), DecoderState())
    assert reasons(cut) == [("too_short", "problem")]


def test_unsupported_versions_are_said() -> None:
    # bthome-ble test_incorrect_bthome_version: a problem (it claims to be BTHome)
    result = decode_advertisement(vector("test_incorrect_bthome_version", source=BTHOME), KeyRing(), DecoderState())
    assert reasons(result) == [("unsupported", "problem")]
    # A MiBeacon mesh frame (frame control bit 7) and a v1 frame: notes (xiaomi-ble skips both)
    plain = bytes.fromhex(XIAOMI["test_Xiaomi_LYWSD03MMC"][0]["data"])
    mesh = decode_advertisement(mi("A4:C1:38:B4:94:4C", bytes([plain[0] | 0x80]) + plain[1:]), KeyRing(),
                                DecoderState())
    v1 = decode_advertisement(mi("A4:C1:38:B4:94:4C", plain[:1] + bytes([0x10]) + plain[2:]), KeyRing(), DecoderState())
    assert reasons(mesh) == reasons(v1) == [("unsupported", "note")]
    # pvvx's encrypted custom format
    enc = decode_advertisement(Advertisement.create("A4:C1:38:52:8F:62", -60, None,
                                                    {ENVIRONMENTAL_SENSING_UUID: bytes(11)}, {}, T0),
                               KeyRing(), DecoderState())
    assert reasons(enc) == [("unsupported", "note")] and "BTHome" in enc.notes[0]


def test_a_frame_naming_another_device_is_a_note() -> None:
    frame = bytes.fromhex(XIAOMI["test_Xiaomi_LYWSD03MMC"][0]["data"])  # names A4:C1:38:B4:94:4C
    result = decode_advertisement(mi("A4:C1:38:B4:94:4D", frame), KeyRing(), DecoderState())
    assert not result.decoded and reasons(result) == [("other_device", "note")]


async def test_a_frame_without_readings_is_counted(hub: Hub, notes: list[str]) -> None:
    # xiaomi-ble test_blank_advertisements_then_unencrypted: an object-less frame, then a reading
    adapter, ctx = await start_ble(hub)
    adapter.feed(vector("test_blank_advertisements_then_unencrypted", 0))
    adapter.feed(vector("test_blank_advertisements_then_unencrypted", 1, T0 + 1))
    row = XIAOMI["test_blank_advertisements_then_unencrypted"][0]
    assert dropped(adapter, row["address"]) == {"no_data": 1}
    assert hub.devices[f"ble:{normalize_mac(row['address'])}"].value("main", "temperature", "celsius") == 19.6
    assert notes == [] and ctx.bad_input == []


def test_an_impossible_value_is_a_problem() -> None:
    result = decode_advertisement(bt("A4:C1:38:8D:18:B2", b"\x40\x02\xca\x09\x03\xff\xff"), KeyRing(), DecoderState())
    assert values(result) == {("main", "temperature", "celsius"): 25.06}  # 655.35 % humidity is not taken
    assert reasons(result) == [("invalid_value", "problem")]


async def test_a_decoder_bug_costs_one_advertisement(hub: Hub, monkeypatch: Any) -> None:
    def broken(raw: bytes, model: str, out: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(_mibeacon.OBJECTS, 0x100D, (4, broken))
    adapter, ctx = await start_ble(hub)
    adapter.feed(vector("test_Xiaomi_LYWSD03MMC"))
    row = XIAOMI["test_Xiaomi_LYWSD03MMC"][0]
    assert dropped(adapter, row["address"]) == {"decoder_error": 1}
    assert any("boom" in p for p in ctx.bad_input)


def _reason_cases() -> list[tuple[str, list[Advertisement], dict[str, str], str]]:
    """reason -> (advertisements, keys, where it is said: "problem" = bad input, "note", "count" = counted only)."""
    plain = bytes.fromhex(XIAOMI["test_Xiaomi_LYWSD03MMC"][0]["data"])
    lywsd = XIAOMI["test_Xiaomi_LYWSD03MMC"][0]["address"]
    same = BTHOME["test_same_service_data"][0]
    down = BTHOME["test_bthome_pressure"][0]
    wrong = XIAOMI["test_bindkey_wrong"][0]
    return [
        ("no_key", [mi(MOTION_SENSOR, NO_MOTION)], {}, "note"),
        ("decryption_failed", [vector("test_bindkey_wrong")], {wrong["address"]: wrong["key"]}, "problem"),
        ("replay", [mi(MOTION_SENSOR, NO_MOTION), mi(MOTION_SENSOR, MOTION, T0 + 600)], {MOTION_SENSOR: MOTION_KEY},
         "problem"),
        ("duplicate", [vector("test_same_service_data", 0, T0, BTHOME), vector("test_same_service_data", 1, T0 + 5,
                                                                                BTHOME)],
         {same["address"]: same["key"]}, "count"),
        ("downgrade", [vector("test_bthome_pressure", source=BTHOME)],
         {down["address"]: "814aac74c4f17b6c1581e1ab87816b99"}, "problem"),
        ("unknown_object", [mi(lywsd, plain + bytes.fromhex("999902abcd"))], {}, "note"),
        ("not_used", [vector("test_Xiaomi_HHCCJCY01_all_values", 1)], {}, "note"),  # 0x1009 conductivity
        ("too_short", [vector("test_too_short_encryption_advertisement", source=BTHOME)],
         {BTHOME["test_too_short_encryption_advertisement"][0]["address"]:
          BTHOME["test_too_short_encryption_advertisement"][0]["key"]}, "problem"),
        ("unsupported", [mi(lywsd, bytes([plain[0] | 0x80]) + plain[1:])], {}, "note"),
        ("other_device", [mi("A4:C1:38:B4:94:4D", plain)], {}, "note"),
        ("no_data", [vector("test_blank_advertisements_then_unencrypted", 0)], {}, "count"),
        ("invalid_value", [bt("A4:C1:38:8D:18:B2", b"\x40\x03\xff\xff")], {}, "problem"),
    ]


@pytest.mark.parametrize("case", _reason_cases(), ids=lambda case: case[0])
async def test_each_reason_is_counted_per_device_and_said_where_it_belongs(
        case: tuple[str, list[Advertisement], dict[str, str], str], hub: Hub, clock: SimulatedClock,
        notes: list[str]) -> None:
    reason, advertisements, keys, said = case
    adapter, ctx = await start_ble(hub, keys=keys)
    for advertisement in advertisements:
        clock.advance_to(advertisement.t)
        adapter.feed(advertisement)
    device = advertisements[-1].address
    assert dropped(adapter, device).get(reason) == 1, adapter.stats()["dropped"]
    assert adapter.stats()["dropped"]["by_reason"][reason] == 1
    ours = [n for n in notes if f"[{reason}]" in n]
    if said == "problem":
        assert len(ctx.bad_input) == 1 and ours == []
    elif said == "note":
        assert ctx.bad_input == [] and len(ours) == 1 and ours[0].startswith(device)
    else:
        assert ctx.bad_input == [] and ours == []


# ------------------------------------------------------------------------- saying it, at a rate


async def test_notes_are_rate_limited_per_device_and_reason_and_counted_in_full(
        hub: Hub, clock: SimulatedClock, notes: list[str]) -> None:
    adapter, _ = await start_ble(hub)
    other = "18:C2:3C:20:8E:78"
    for i in range(100):
        t = T0 + 10 * i
        clock.advance_to(t)
        adapter.feed(mi(MOTION_SENSOR, NO_MOTION[:4] + bytes([i]) + NO_MOTION[5:], t))
    adapter.feed(mi(other, NO_MOTION, T0 + 1000))
    assert dropped(adapter, MOTION_SENSOR) == {"no_key": 100}
    assert len(notes) == 2  # one per device within the hour
    clock.advance_to(T0 + NOTE_EVERY_S + 1)
    adapter.feed(mi(MOTION_SENSOR, NO_MOTION, T0 + NOTE_EVERY_S + 1))
    assert len(notes) == 3 and "(99 more since the last note)" in notes[-1]
    # what a device sends and we do not use is said once, however often and long it sends it
    plant = XIAOMI["test_Xiaomi_HHCCJCY01_all_values"][1]  # 0x1009 soil conductivity
    for i in range(5):
        t = T0 + NOTE_EVERY_S + 2 + i * NOTE_EVERY_S
        clock.advance_to(t)
        adapter.feed(mi(plant["address"], bytes.fromhex(plant["data"])[:4] + bytes([i]) + bytes.fromhex(
            plant["data"])[5:], t))
    assert dropped(adapter, plant["address"]) == {"not_used": 5}
    assert sum("0x1009" in n for n in notes) == 1
    await adapter.stop()  # the summary, for replay's notes and the log
    assert "ble:18:c2:3c:20:8e:77 no_key 101" in notes[-1]


async def test_stats_say_it_by_reason_and_device(hub: Hub) -> None:
    adapter, _ = await start_ble(hub)
    adapter.feed(mi(MOTION_SENSOR, NO_MOTION))
    adapter.feed(vector("test_blank_advertisements_then_unencrypted", 0))
    stats = adapter.stats()
    assert stats["scanner"] == "off"
    assert stats["dropped"] == {"by_reason": {"no_data": 1, "no_key": 1}, "devices": 2}
    assert "by_device" not in stats["dropped"]  # /healthz needs no token: no addresses there
    assert adapter.drops()["by_device"][f"ble:{normalize_mac(MOTION_SENSOR)}"] == {"no_key": 1}


async def test_replay_lists_a_sensor_without_its_key(tmp_path: Path) -> None:
    from gateway.config import Config
    from gateway.replay import replay

    capture = tmp_path / "motion.jsonl"
    lines = [{"t": T0 + i * 60, "source": "ble", "address": MOTION_SENSOR, "rssi": -70,
              "service_data": {"fe95": frame.hex()}} for i, frame in enumerate((MOTION, NO_MOTION))]
    capture.write_text("".join(json.dumps(line) + "\n" for line in lines))
    without = (await replay(capture)).as_dict()
    assert "ble:18:c2:3c:20:8e:77" not in {d["id"] for d in without["devices"]}
    ble_notes = [n["message"] for n in without["notes"] if n["source"] == "ble"]
    assert any("motion.jsonl:1: 18:c2:3c:20:8e:77: MiBeacon v5 advertisement is encrypted and there is no bind key"
               in n for n in ble_notes), ble_notes
    assert any("no_key 2" in n for n in ble_notes)  # the summary at the end
    with_key = (await replay(capture, Config(adapters={"ble": {"keys": {MOTION_SENSOR: MOTION_KEY}}}))).as_dict()
    sensor = {d["id"]: d for d in with_key["devices"]}["ble:18:c2:3c:20:8e:77"]
    assert sensor["components"]["main"]["occupancy"] == {"occupied": False}
    assert [e for e in with_key["errors"] if e["source"] == "ble"] == []


# ----------------------------------------------------------------------------- MiBeacon v2/v3


def test_legacy_encryption_with_a_12_byte_key() -> None:
    # xiaomi-ble test_Xiaomi_YLKG07YL_press / _rotate (MiBeacon v3, 12-byte key) and test_bindkey_wrong_legacy
    row = XIAOMI["test_Xiaomi_YLKG07YL_press"][0]
    keys = KeyRing({row["address"]: row["key"]})
    press = decode_advertisement(vector("test_Xiaomi_YLKG07YL_press"), keys, DecoderState())
    assert [e.data for e in press.events] == [{"button": 1, "action": "press", "presses": 1, "kind": "single"}]
    assert press.info is not None and press.info.model == "YLKG07YL/YLKG08YL"
    assert press.info.sw_version == "MiBeacon v3 (encrypted)"
    rotate = decode_advertisement(vector("test_Xiaomi_YLKG07YL_rotate"), keys, DecoderState())
    assert [e.data for e in rotate.events] == [{"button": 0, "action": "rotate_left", "steps": 1}]
    wrong_row = XIAOMI["test_bindkey_wrong_legacy"][0]
    wrong = decode_advertisement(vector("test_bindkey_wrong_legacy"), KeyRing({wrong_row["address"]: wrong_row["key"]}),
                                 DecoderState())
    assert not wrong.decoded and reasons(wrong) == [("decryption_failed", "problem")]
    none = decode_advertisement(vector("test_encryption_needs_v2"), KeyRing(), DecoderState())
    assert none.needs_key and reasons(none) == [("no_key", "note")]


# ------------------------------------------------------------------------- pvvx's opening flag

PVVX = "A4:C1:38:8D:18:B2"


def pvvx_data2(pid: int, opened: int, millivolts: int = 2950) -> bytes:
    """pvvx's second BTHome measurement packet of a LYWSD03MMC (src/bthome_beacon.h adv_bthome_data2_t): packet id,
    0x0C battery voltage, 0x10 trigger output, 0x11 reed-switch input."""
    return bytes([0x40, 0x00, pid, 0x0C]) + millivolts.to_bytes(2, "little") + bytes([0x10, 0x00, 0x11, opened])


def pvvx_event(pid: int, opened: int, count: int) -> bytes:
    """pvvx's reed-switch event beacon (bthome_event_beacon: 0x11 + 0x3E count32), sent only in switch mode."""
    return bytes([0x40, 0x00, pid, 0x11, opened, 0x3E]) + count.to_bytes(4, "little")


async def test_a_pvvx_thermometers_spare_opening_flag_is_a_note_until_it_moves(
        hub: Hub, clock: SimulatedClock, notes: list[str]) -> None:
    adapter, ctx = await start_ble(hub)
    for i in range(3):  # a bare thermometer: the flag reads "open" forever
        clock.advance_to(T0 + 10 * i)
        adapter.feed(bt(PVVX, pvvx_data2(i, 1), T0 + 10 * i, name="ATC_8D18B2"))
    device = hub.devices["ble:a4:c1:38:8d:18:b2"]
    assert device.value("main", "battery", "volts") == 2.95
    assert "contact" not in device.support["main"]
    # each packet: the flag, and the trigger output (0x10) we have no capability for; said once each
    assert dropped(adapter, PVVX) == {"not_used": 6} and len(notes) == 2
    assert any("0x11 opening flag (open) not used" in n and "reed-switch" in n for n in notes)
    clock.advance_to(T0 + 40)  # a reed switch was fitted after all: the door closes
    adapter.feed(bt(PVVX, pvvx_data2(4, 0), T0 + 40, name="ATC_8D18B2"))
    assert device.value("main", "contact", "open") is False
    clock.advance_to(T0 + 50)
    adapter.feed(bt(PVVX, pvvx_data2(5, 0), T0 + 50, name="ATC_8D18B2"))
    assert device.value("main", "contact", "open") is False and ctx.bad_input == []


def test_a_pvvx_switch_event_or_a_trigger_based_device_is_believed_at_once() -> None:
    event = decode_advertisement(bt(PVVX, pvvx_event(7, 1, 12)), KeyRing(), DecoderState())
    assert values(event) == {("main", "contact", "open"): True}
    # bthome-ble test_bthome_binary_sensor_opening: a packet of nothing but the flag is an event too
    alone = decode_advertisement(vector("test_bthome_binary_sensor_opening", source=BTHOME), KeyRing(), DecoderState())
    assert values(alone) == {("main", "contact", "open"): False}
    trigger = decode_advertisement(bt(PVVX, b"\x44\x01\x64\x11\x01"), KeyRing(), DecoderState())
    assert values(trigger)[("main", "contact", "open")] is True


async def test_a_contact_restored_from_the_store_keeps_its_flag() -> None:
    # A gateway restarted (a new decoder state): the device it restores already has a contact, so its
    # flag is used from the first packet, not after the next change.
    from gateway.sdk import CapabilitySupport, DeviceInfo

    hub = Hub(SimulatedClock(T0))
    hub.upsert_device(DeviceInfo(id="ble:a4:c1:38:8d:18:b2", name="Door", source="ble", mac="a4:c1:38:8d:18:b2",
                                 components={"main": {"contact": CapabilitySupport(frozenset({"open"}))}}), "ble")
    adapter, _ = await start_ble(hub)
    adapter.feed(bt(PVVX, pvvx_data2(9, 0), T0 + 5, name="ATC_8D18B2"))
    assert hub.devices["ble:a4:c1:38:8d:18:b2"].value("main", "contact", "open") is False


def test_pvvx_custom_format_and_its_flags() -> None:
    # OpenMQTTGateway issue #1393: a real pvvx custom frame (0x181A, 15 bytes), flags 0x0f
    line = json.loads((FIXTURES / "gateways.jsonl").read_text().splitlines()[3])["payload"]
    frame = bytes.fromhex(line["servicedata"])
    state = DecoderState()
    first = decode_advertisement(Advertisement.create(line["id"], -92, line["name"],
                                                      {ENVIRONMENTAL_SENSING_UUID: frame}, {}, T0), KeyRing(), state)
    assert values(first) == {("main", "temperature", "celsius"): 19.23, ("main", "humidity", "percent"): 48.36,
                             ("main", "battery", "volts"): 2.959, ("main", "battery", "percent"): 100}
    assert first.info is not None and first.info.sw_version == "pvvx custom format"
    assert sorted(reasons(first)) == [("not_used", "note"), ("not_used", "note")]
    assert any("reed-switch" in n for n in first.notes) and any("temperature trigger" in n for n in first.notes)
    repeat = decode_advertisement(Advertisement.create(line["id"], -92, None, {ENVIRONMENTAL_SENSING_UUID: frame}, {},
                                                       T0 + 2), KeyRing(), state)
    assert reasons(repeat) == [("duplicate", "count")]
    closed = frame[:-2] + bytes([frame[-2] + 1, frame[-1] & ~0x01])  # next measurement, reed switch off
    moved = decode_advertisement(Advertisement.create(line["id"], -92, None, {ENVIRONMENTAL_SENSING_UUID: closed}, {},
                                                      T0 + 10), KeyRing(), state)
    assert values(moved)[("main", "contact", "open")] is False
    # atc1441's format (13 bytes, big-endian): 23.5 °C, 45 %, 87 %, 2.9 V
    atc = bytes.fromhex("a4c1388d18b2") + bytes.fromhex("00eb") + bytes([45, 87]) + (2900).to_bytes(2, "big") + b"\x01"
    result = decode_advertisement(Advertisement.create(PVVX, -60, None, {ENVIRONMENTAL_SENSING_UUID: atc}, {}, T0),
                                  KeyRing(), DecoderState())
    assert values(result) == {("main", "temperature", "celsius"): 23.5, ("main", "humidity", "percent"): 45,
                              ("main", "battery", "percent"): 87, ("main", "battery", "volts"): 2.9}


# ------------------------------------------------------------------- xiaomi-ble's objects and vectors

# Every object id of xiaomi-ble's xiaomi_dataobject_dict (src/xiaomi_ble/parser.py at 509f516e).
XIAOMI_BLE_OBJECT_IDS = [
    0x0003, 0x0006, 0x0007, 0x0008, 0x0010, 0x000A, 0x000B, 0x000F, 0x1001, 0x1004, 0x1005, 0x1006, 0x1007, 0x1008,
    0x1009, 0x1010, 0x1012, 0x1013, 0x1014, 0x1015, 0x1017, 0x1018, 0x1019, 0x100A, 0x100D, 0x100E, 0x101B, 0x2000,
    0x3003, 0x4801, 0x4802, 0x4803, 0x4804, 0x4805, 0x4806, 0x4808, 0x480C, 0x4818, 0x483C, 0x483D, 0x483E, 0x484E,
    0x4851, 0x4852, 0x487B, 0x4A01, 0x4A08, 0x4A0C, 0x4A0D, 0x4A0E, 0x4A0F, 0x4A12, 0x4A13, 0x4A1A, 0x4A68, 0x4C01,
    0x4C02, 0x4C03, 0x4C08, 0x4C14, 0x4E01, 0x4E16, 0x4E1C, 0x4E0C, 0x4E0D, 0x4E0E, 0x5003, 0x5413, 0x5414, 0x5422,
    0x560C, 0x560D, 0x560E, 0x5810, 0x6461, 0x6E16,
]


def test_every_object_of_xiaomi_ble_is_mapped_or_said_not_used() -> None:
    missing = [hex(i) for i in XIAOMI_BLE_OBJECT_IDS if i not in _mibeacon.OBJECTS and i not in _mibeacon.NOT_USED]
    assert missing == []
    assert not set(_mibeacon.OBJECTS) & set(_mibeacon.NOT_USED)


def _key_for(row: dict[str, Any]) -> KeyRing:
    key = row["key"]
    return KeyRing({row["address"]: key} if key and len(key) in (24, 32) else {})


# The public vectors that are bad input on purpose, and the reason each must give.
BAD_ON_PURPOSE = {
    "test_bindkey_wrong": "decryption_failed", "test_bindkey_verified_can_be_unset_v4": "decryption_failed",
    "test_bindkey_wrong_legacy": "decryption_failed", "test_bindkey_verified_can_be_unset_legacy": "decryption_failed",
    "test_bindkey_verified_can_be_unset": "decryption_failed", "test_too_short_encryption_advertisement": "too_short",
    "test_bthome_wrong_object_id": "unknown_object", "test_bthome_battery_wrong_object_id_humidity": "unknown_object",
    "test_incorrect_bthome_version": "unsupported", "test_bthome_invalid_object_payload_data_length": "too_short",
}


@pytest.mark.parametrize("source", ["xiaomi", "bthome"])
def test_every_public_vector_is_applied_or_reported(source: str) -> None:
    table = XIAOMI if source == "xiaomi" else BTHOME
    silent, wrong = [], []
    for test, rows in table.items():
        for n, row in enumerate(rows):
            result = decode_advertisement(vector(test, n, source=table), _key_for(row), DecoderState())
            if not result.decoded and not result.drops:
                silent.append(f"{test}#{n}")
            problems = {d.reason.value for d in result.drops if d.severity is Severity.PROBLEM}
            if problems != ({BAD_ON_PURPOSE[test]} if test in BAD_ON_PURPOSE else set()):
                wrong.append(f"{test}#{n}: {problems}")
            for update in result.updates:
                assert capability(update.capability).attributes[update.attribute].check(update.value) is None
    assert silent == [] and wrong == []


def test_xiaomi_objects_as_xiaomi_ble_reads_them() -> None:
    cases: list[tuple[str, dict[tuple[str, str], Any]]] = [
        ("test_Xiaomi_MS1BB_MI_obj4804", {("contact", "open"): True}),  # 0x4804 opening state
        ("test_Xiaomi_MS1BB_MI_obj4a12", {("contact", "open"): False, ("tamper", "tampered"): False}),
        ("test_Xiaomi_MS1BB_MI_obj4a1a", {("contact", "open"): True}),  # door left open
        ("test_Xiaomi_MS1BB_MI_obj4a08", {("occupancy", "occupied"): True, ("illuminance", "lux"): 228.0}),
        ("test_Xiaomi_RS1BB_MI_obj4806", {("water_leak", "leak"): False}),
        ("test_Xiaomi_ES3_illuminance", {("illuminance", "lux"): 173.0}),  # 0x4805 lux (float)
        ("test_Xiaomi_Lockin_SV40_lock", {("lock", "state"): "unlocked"}),  # 0x000B
        ("test_Xiaomi_Lockin_SV40_door", {("contact", "open"): False}),  # 0x0007, 5 bytes
        ("test_Xiaomi_MMC_T201_1", {("temperature", "celsius"): 36.87, ("battery", "percent"): 81}),  # 0x2000
        ("test_Xiaomi_MMC_W505", {("temperature", "celsius"): 34.45}),  # 0x000A body temperature
    ]
    for test, expected in cases:
        row = XIAOMI[test][0]
        result = decode_advertisement(vector(test), _key_for(row), DecoderState())
        got = {(cap, attr): v for (_, cap, attr), v in values(result).items()
               if cap not in ("button",)}
        assert got == expected, test


def test_xiaomi_buttons_keep_their_number_and_kind() -> None:
    def presses(test: str, n: int = 0) -> list[tuple[int, str | None]]:
        row = XIAOMI[test][n]
        result = decode_advertisement(vector(test, n), _key_for(row), DecoderState())
        return [(e.data["button"], e.data.get("kind")) for e in result.events]

    assert presses("test_Xiaomi_K9B", 0) == [(1, "single")]  # K9B-1BTN
    assert presses("test_Xiaomi_K9B", 1) == [(1, "single"), (2, "single")]  # both buttons of a K9B-2BTN
    assert presses("test_Xiaomi_K9B", 2) == [(1, "long"), (2, "long"), (3, "long")]  # K9B-3BTN: 1 is long
    assert presses("test_Xiaomi_XMWXKG01YL") == [(2, "single")]  # 0x4E0C right button
    assert presses("test_Xiaomi_XMWS01XS_double_press") == [(2, "double")]  # 0x4A0D
    assert presses("test_Xiaomi_XMWS01XS_long_press") == [(2, "long")]  # 0x4A0E
    assert presses("test_Xiaomi_MS1BB_MI_obj4a13") == [(1, "single")]
    assert presses("test_Xiaomi_KS2_button_press") == [(1, "single")]  # 0x560C


# ------------------------------------------------------------------------------------- fuzzing

ADDRESSES = ["54:48:E6:8F:80:A5", "A4:C1:38:02:83:F4", MOTION_SENSOR, "F8:24:41:C5:98:8B", "A4:C1:38:52:8F:62"]
FUZZ_KEYS = KeyRing({"54:48:e6:8f:80:a5": "231d39c1d7cc1ab1aee224cd096db932", MOTION_SENSOR: MOTION_KEY,
                     "f8:24:41:c5:98:8b": "b853075158487ca39a5b5ea9"})
UUIDS = [BTHOME_UUID, MIBEACON_UUID, ENVIRONMENTAL_SENSING_UUID]
SEEDS = [bytes.fromhex(r["data"]) for rows in (*XIAOMI.values(), *BTHOME.values()) for r in rows]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=40), st.sampled_from(SEEDS)),
       flips=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 255)), max_size=3),
       cut=st.integers(0, 40), uuid=st.sampled_from(UUIDS), address=st.sampled_from(ADDRESSES))
def test_no_advertisement_raises(data: bytes, flips: list[tuple[int, int]], cut: int, uuid: str,
                                 address: str) -> None:
    frame = bytearray(data[:cut] if cut < len(data) else data)
    for position, mask in flips:
        if position < len(frame):
            frame[position] ^= mask
    advertisement = Advertisement(normalize_mac(address), -60, None, {uuid: bytes(frame)}, {}, T0)
    result = DecodeResult(advertisement.address, "ble:" + advertisement.address)
    _decode(advertisement, FUZZ_KEYS, DecoderState(), result)  # without the safety net: our bugs, found
    for update in result.updates:
        assert capability(update.capability).attributes[update.attribute].check(update.value) is None
    assert all(d.reason in DropReason for d in result.drops)
    full = decode_advertisement(advertisement, FUZZ_KEYS, DecoderState())
    assert full.decoded or full.drops  # a known format is applied or reported, never silent


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(st.tuples(st.one_of(st.binary(max_size=40), st.sampled_from(SEEDS)),
                                 st.sampled_from(UUIDS), st.sampled_from(ADDRESSES)), min_size=1, max_size=8))
def test_no_advertisement_breaks_the_devices_layer(frames: list[tuple[bytes, str, str]]) -> None:
    """Decoded, counted, said and applied to a real hub: nothing raises, nothing is 'could not apply'."""
    from adapters.ble.devices import BleDevices
    from adapters.ble.shared import SharedBle

    hub = Hub(SimulatedClock(T0))
    ctx = HubContext(hub, "ble", {})
    shared = SharedBle()
    shared.keys.update(FUZZ_KEYS)
    devices = BleDevices(ctx, shared, expected_interval_s=600)
    devices.start()
    for i, (data, uuid, address) in enumerate(frames):
        result = devices.handle(Advertisement(normalize_mac(address), -60, None, {uuid: data}, {}, T0 + i), "local")
        assert result.decoded or result.drops  # every one of these UUIDs is a format of ours: never silent
    assert not [p for p in ctx.bad_input if "could not apply" in p]
    devices.stop()
