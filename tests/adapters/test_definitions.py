"""Declarative device definitions at run time: the shipped examples decode a capture of their real payloads
(sources: tests/fixtures/definitions/README.md) through ``hearth replay``; every shipped command publishes the
exact topic and payload against a real Mosquitto; bad and fuzzed payloads only ever become bad input."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gateway.replay as replay_module
from adapters.definitions.adapter import DefinitionsAdapter, DefinitionsConfig
from adapters.definitions.codec import DefinitionCodec, Instance
from adapters.definitions.format import load_definition_text, load_definitions
from gateway.clock import SimulatedClock, SystemClock
from gateway.errors import CommandValidationError
from gateway.hub import Hub
from gateway.replay import ReplayMqtt, replay
from gateway.sdk import CodecError, Command, CommandResult, capability
from gateway.supervisor import Supervisor
from tests.broker import Mosquitto
from tests.gateway.test_mqtt import eventually, make_session, open_observer

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "definitions" / "capture.jsonl"
SERIAL = "def:opendtu:114190641177"
HEAT_PUMP = "def:heishamon:panasonic_heat_pump"


def capture_messages(prefix: str = "") -> list[tuple[str, bytes]]:
    out = []
    for line in CAPTURE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["topic"].startswith(prefix):
            out.append((record["topic"], record["payload"].encode()))
    return out


_SHIPPED = load_definitions([])  # loaded definitions are frozen: shared by every codec of these tests


def shipped_codec(instances: list[Instance] | None = None) -> DefinitionCodec:
    return DefinitionCodec(_SHIPPED, instances or [])


def feed(codec: DefinitionCodec, messages: list[tuple[str, bytes]]) -> dict[str, Any]:
    result: dict[str, Any] = {"upserts": [], "updates": {}, "availability": {}, "problems": []}
    for topic, payload in messages:
        out = codec.decode(topic, payload)
        result["upserts"] += out.upserts
        result["problems"] += out.problems
        result["availability"].update(dict(out.availability))
        for u in out.updates:
            spec = capability(u.capability)
            assert spec is not None and spec.attributes[u.attribute].check(u.value) is None, u
            result["updates"][(u.device_id, u.component, u.capability, u.attribute)] = u.value
    return result


def test_real_values_of_heishamon_and_opendtu() -> None:
    # What real installations send (HeishaMon MQTT-Topics.md and issues #350, #719, #960; OpenDTU's firmware
    # sends the power factor as a fraction, "0.999", despite its docs' "in percent").
    codec = shipped_codec()
    hp, dtu = "def:heishamon:panasonic_heat_pump", "def:opendtu:116484256345"
    got = feed(codec, [("panasonic_heat_pump/main/Heatpump_State", b"1"),
                       ("panasonic_heat_pump/main/Outside_Temp", b"-1"),  # a winter's day, not "unknown"
                       ("panasonic_heat_pump/main/DHW_Temp", b"-128"),  # no tank sensor
                       ("panasonic_heat_pump/main/Heat_Power_Consumption", b"-200"),  # K/L series: not measured
                       ("solar/116484256345/status/reachable", b"1"),  # how OpenDTU's inverters are found
                       ("solar/116484256345/0/powerfactor", b"0.999"),
                       ("solar/116484256345/0/power", b"442.2")])
    assert got["problems"] == []
    updates = got["updates"]
    assert updates[(hp, "outdoor", "temperature", "celsius")] == -1
    assert updates[(hp, "dhw", "thermostat", "current_celsius")] is None
    assert updates[(hp, "main", "power_meter", "watts")] is None
    assert updates[(dtu, "main", "power_meter", "power_factor")] == 0.999


@pytest.fixture
def with_definitions_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    # Until the entry point `definitions` is registered in pyproject.toml, replay cannot discover the adapter.
    discovered = replay_module.discover_adapters
    monkeypatch.setattr(replay_module, "discover_adapters",
                        lambda enabled=None: {**discovered(enabled), "definitions": DefinitionsAdapter})


@pytest.mark.usefixtures("with_definitions_adapter")
async def test_replay_of_the_shipped_examples() -> None:
    result = await replay(CAPTURE)
    assert [e for e in result.errors if e["source"] in ("definitions", "def", "capture")] == []
    devices = {d["id"]: d for d in result.devices if d["id"].startswith("def:")}
    assert sorted(devices) == ["def:hcpy:dishwasher", "def:hcpy:washer", HEAT_PUMP, SERIAL]

    inverter = devices[SERIAL]  # OpenDTU at dusk: not reachable, the last values it read
    assert (inverter["name"], inverter["manufacturer"], inverter["source"], inverter["available"]) == (
        "HM-800",
        "Hoymiles",
        "def",
        False,
    )
    assert inverter["components"] == {
        "main": {
            "power_meter": {"watts": 0.0, "volts": 229.0, "amps": 0.0, "hertz": 50.0, "power_factor": 0.0},
            "energy_meter": {"exported_kwh": 13.338},
            "temperature": {"celsius": 7.7},
            "level": {"percent": 75.0},
            "on_off": {},
        },
        "dc1": {"power_meter": {"watts": 0.2, "volts": 14.1, "amps": 0.02}, "energy_meter": {"exported_kwh": 7.664}},
        "dc2": {"power_meter": {"watts": 0.4, "volts": 14.1, "amps": 0.03}},
    }

    heat_pump = devices[HEAT_PUMP]
    assert (heat_pump["name"], heat_pump["model"], heat_pump["available"]) == (
        "Heat pump",
        "Aquarea heat pump (HeishaMon)",
        True,
    )
    assert heat_pump["components"] == {
        "main": {
            "on_off": {"on": True},
            "power_meter": {"watts": 850},
            "thermostat": {"mode": "heat", "current_celsius": 35, "target_celsius": 36},
        },
        # DHW_Temp went to -1: "unknown" in HeishaMon's words, null in ours
        "dhw": {"thermostat": {"current_celsius": None, "target_celsius": 48}, "power_meter": {"watts": 0}},
        "outdoor": {"temperature": {"celsius": 4}},
    }

    dishwasher = devices["def:hcpy:dishwasher"]["components"]["main"]
    assert dishwasher == {
        "appliance": {"state": "running", "remaining_s": 10140},
        "contact": {"open": False},
        "on_off": {"on": True},
        "connectivity": {},
    }
    washer = devices["def:hcpy:washer"]
    assert washer["name"] == "Home Connect washer" and washer["available"] is True
    assert washer["components"]["main"] == {
        "appliance": {"state": "idle", "remaining_s": 13680},
        "contact": {"open": True},
        "on_off": {"on": True},
        "connectivity": {"rssi_dbm": -50},
    }


def test_messages_before_the_announcement_are_kept_and_unrelated_topics_ignored() -> None:
    codec = shipped_codec()
    # OpenDTU publishes the name (and a global homeconnect/LWT matches HeishaMon's {device}/LWT) first.
    r = feed(
        codec,
        [
            ("solar/114190641177/name", b"HM-800"),
            ("homeconnect/LWT", b"online"),
            ("solar/114190641177/0/power", b"12.5"),
        ],
    )
    assert r["upserts"] == [] and r["problems"] == []
    r = feed(codec, [("solar/114190641177/status/reachable", b"1")])
    assert [i.name for i in r["upserts"]] == ["Inverter 114190641177", "HM-800"]
    assert r["updates"] == {(SERIAL, "main", "power_meter", "watts"): 12.5}
    assert r["availability"] == {SERIAL: True}
    assert "def:heishamon:homeconnect" not in codec.devices
    assert set(codec.remembered()) == {SERIAL}


def test_bad_payloads_are_problems_not_exceptions() -> None:
    codec = shipped_codec()
    feed(codec, capture_messages("panasonic_heat_pump/"))
    feed(codec, capture_messages("homeconnect/"))
    cases = [
        ("panasonic_heat_pump/main/Heatpump_State", b"2", "expected one of '0', '1'"),
        ("panasonic_heat_pump/main/Main_Outlet_Temp", b"warm", "expected a number"),
        ("panasonic_heat_pump/main/Operating_Mode_State", b"12", "expected one of"),
        ("panasonic_heat_pump/LWT", b"maybe", "availability"),
        ("panasonic_heat_pump/main/Outside_Temp", b"-300", "below the minimum"),
        ("homeconnect/washer/state", b"not json", "expected a JSON payload"),
        ("homeconnect/washer/state", b'{"DoorState": "Ajar"}', "expected one of"),
        ("homeconnect/washer/state", b'{"OperationState": {"x": 1}}', "expected one of"),
        ("homeconnect/washer/state", b'{"WiFiSignalStrength": "strong"}', "expected a number"),
        ("homeconnect/washer/state", b"\xff\xfe", "not UTF-8"),
        ("homeconnect/washer/state", b"[1, 2]", "expected an object"),
    ]
    for topic, payload, words in cases:
        out = codec.decode(topic, payload)
        assert out.updates == [] and len(out.problems) == 1 and words in out.problems[0], (payload, out.problems)
    # A state document without some keys is normal: it reports what it has, and nothing else.
    out = codec.decode("homeconnect/washer/state", b'{"DoorState": "Closed"}')
    assert [(u.attribute, u.value) for u in out.updates] == [("open", False)] and out.problems == []
    assert codec.decode("homeconnect/washer/state", b"").updates == []


def test_units_scale_maps_and_json_paths_of_a_user_definition() -> None:
    definition = load_definition_text(
        """
name = "acme"
version = 1
manufacturer = "Acme"
model = "M"
[match]
topic = "acme/{device}"
[[state]]
topic = "tele"
path = "data[0].temp_f"
attribute = "temperature.celsius"
unit = "°F"
digits = 1
[[state]]
topic = "tele"
path = 'meter["energy Wh"]'
attribute = "energy_meter.kwh"
unit = "Wh"
[[state]]
topic = "tele"
path = "meter.power_kw"
attribute = "power_meter.watts"
unit = "kW"
[[state]]
topic = "tele"
path = "level"
attribute = "level.percent"
scale = 0.39370078740157477
digits = 0
[[state]]
topic = "tele"
path = "remaining_min"
attribute = "appliance.remaining_s"
unit = "min"
[[state]]
topic = "tele"
path = "pf"
attribute = "power_meter.power_factor"
unit = "%"
[[state]]
topic = "tele"
path = "mode"
attribute = "thermostat.mode"
values = { "HEAT" = "heat" }
default = "auto"
""",
        "acme.toml",
    )
    codec = DefinitionCodec([definition])
    payload = orjson.dumps(
        {
            "data": [{"temp_f": 71.6}],
            "meter": {"energy Wh": 261251, "power_kw": "1.5"},
            "level": 254,
            "remaining_min": 38,
            "pf": 98,
            "mode": "BOOST",
        }
    )
    r = feed(codec, [("acme/Plug-1/tele", payload)])
    assert r["problems"] == []
    values = {(cap, attr): v for (_, _, cap, attr), v in r["updates"].items()}
    assert values == {
        ("temperature", "celsius"): 22.0,
        ("energy_meter", "kwh"): 261.251,
        ("power_meter", "watts"): 1500.0,
        ("level", "percent"): 100.0,
        ("appliance", "remaining_s"): 2280.0,
        ("power_meter", "power_factor"): 0.98,
        ("thermostat", "mode"): "auto",
    }
    assert list(codec.devices) == ["def:acme:plug-1"]  # lowercase id; the native id keeps its case
    assert codec.devices["def:acme:plug-1"].native == "Plug-1"


def test_encoding_json_escapes_arguments() -> None:
    definition = load_definition_text(
        """
name = "acme"
version = 1
manufacturer = "Acme"
model = "M"
[match]
topic = "acme/{device}"
discover = false
[[command]]
command = "fan.set_preset"
topic = "set"
payload = '{"preset": "{preset}", "device": "{device}", "raw": {preset}}'
[[command]]
command = "thermostat.set_target"
topic = "set"
payload = '{"setpoint": {celsius}}'
args.celsius = { unit = "°F", digits = 0 }
[[command]]
command = "thermostat.set_mode"
topic = "mode/{mode}"
args.mode = { map = { heat = "HEAT", off = "OFF" } }
""",
        "acme.toml",
    )
    codec = DefinitionCodec([definition], [Instance("acme", "Kitchen")])
    assert codec.subscriptions() == []  # nothing to read
    hostile = 'eco", "admin": true, "x": "\\'
    topic, payload, qos, retain = codec.encode(
        Command("def:acme:kitchen", "main", "fan", "set_preset", {"preset": hostile})
    )
    assert (topic, qos, retain) == ("acme/Kitchen/set", 0, False)
    assert orjson.loads(payload) == {"preset": hostile, "device": "Kitchen", "raw": hostile}
    _, payload, _, _ = codec.encode(Command("def:acme:kitchen", "main", "thermostat", "set_target", {"celsius": 22}))
    assert payload == b'{"setpoint": 72}'
    topic, payload, _, _ = codec.encode(Command("def:acme:kitchen", "main", "thermostat", "set_mode", {"mode": "heat"}))
    assert (topic, payload) == ("acme/Kitchen/mode/HEAT", b"")
    with pytest.raises(CodecError, match="takes mode"):
        codec.encode(Command("def:acme:kitchen", "main", "thermostat", "set_mode", {"mode": "cool"}))
    with pytest.raises(CodecError, match="not a device"):
        codec.encode(Command("def:acme:other", "main", "fan", "set_preset", {"preset": "x"}))


def test_pinned_devices_restore_and_config() -> None:
    codec = shipped_codec([Instance("heishamon", "hp_garage", "Garage heat pump")])
    assert [i.name for i in codec.pinned_devices().upserts] == ["Garage heat pump"]
    assert "hp_garage/main/Heatpump_State" in codec.subscriptions()
    assert not any(f.startswith("+/") for f in codec.subscriptions())  # pinned: no wildcard for heishamon
    # Another HeishaMon is not one of the pinned devices.
    assert feed(codec, capture_messages("panasonic_heat_pump/"))["upserts"] == []
    # Devices remembered from the store take commands before their first message.
    fresh = shipped_codec()
    restored = fresh.restore({SERIAL: ["opendtu", "114190641177"], "def:gone:x": ["gone", "x"]}, [SERIAL, "def:gone:x"])
    assert [i.id for i in restored.upserts] == [SERIAL]
    assert fresh.encode(Command(SERIAL, "main", "on_off", "off"))[:2] == ("solar/114190641177/cmd/power", b"0")
    with pytest.raises(ValueError, match="no device definition named 'nope'"):
        shipped_codec([Instance("nope", "x")])
    assert DefinitionsConfig.model_validate({}).folders == []
    for bad in ({"devices": [{"definition": "x", "device": "a/b"}]}, {"folder": ["x"]}):
        with pytest.raises(ValueError):
            DefinitionsConfig.model_validate(bad)


async def test_adapter_start_reports_a_broken_definition_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text(
        'name = "x"\nversion = 1\nmanufacturer = "A"\nmodel = "B"\n'
        '[match]\ntopic = "x/{device}"\n[[state]]\ntopic = "s"\n'
        'attribute = "temperature.kelvin"\n',
        encoding="utf-8",
    )
    hub = Hub(SimulatedClock(0))
    async with Supervisor(
        hub,
        {"definitions": DefinitionsAdapter},
        {"definitions": {"folders": [str(tmp_path)]}},
        mqtt=ReplayMqtt(SimulatedClock(0)),
    ) as supervisor:
        for _ in range(20):
            await asyncio.sleep(0)
        health = supervisor.health["definitions"]
        assert health.state == "backoff"
        assert f"{tmp_path / 'broken.toml'}:9: state[0].attribute: temperature has no attribute" in health.last_error


# ---------------------------------------------------------------------------------------------- fuzz

_TOPICS = sorted({t for t, _ in capture_messages()} | {"solar/x/0/power", "homeconnect/x/state", "a/LWT"})
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=20), c, max_size=4),
    max_leaves=12,
)
_state_keys = st.sampled_from(
    ["OperationState", "DoorState", "PowerState", "RemainingProgramTime", "WiFiSignalStrength"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_TOPICS),
            st.one_of(
                st.binary(max_size=40),
                _json.map(lambda v: json.dumps(v).encode()),
                st.dictionaries(_state_keys, _json, max_size=5).map(lambda v: json.dumps(v).encode()),
                st.sampled_from([b"1", b"0", b"-1", b"Online", b"nan", b"1e999", b"-0", b"\x00", b" ", b"75.00"]),
            ),
        ),
        max_size=12,
    )
)
def test_fuzzed_payloads_never_raise_and_only_valid_values_reach_the_hub(messages: list) -> None:
    codec = shipped_codec()
    feed(codec, messages)  # feed checks every update against the model


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_TOPICS), st.binary(max_size=30)), max_size=10))
def test_fuzzed_payloads_through_the_adapter_are_bad_input_never_exceptions(messages: list) -> None:
    async def run() -> None:
        clock = SimulatedClock(0)
        hub = Hub(clock)
        mqtt = ReplayMqtt(clock)
        async with Supervisor(hub, {"definitions": DefinitionsAdapter}, {}, mqtt=mqtt) as supervisor:
            for _ in range(10):
                await asyncio.sleep(0)
            assert supervisor.health["definitions"].state == "running"
            for topic, payload in messages:
                mqtt.deliver(topic, payload, False)  # raises if the callback does
            assert supervisor.health["definitions"].failures == 0

    asyncio.run(run())


# ---------------------------------------------------------------------------------------------- real broker


@pytest.mark.mqtt
async def test_every_shipped_command_reaches_the_broker(mosquitto_session: Mosquitto, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    serial, base, appliance = f"1141{run}", f"hp_{run}", f"dishwasher_{run}"
    (tmp_path / "acme.toml").write_text(
        f"""
name = "acme"
version = 1
manufacturer = "Acme"
model = "Fan"
[match]
topic = "acme_{run}/{{device}}"
[[command]]
command = "fan.set_preset"
topic = "set"
payload = '{{"preset": "{{preset}}"}}'
""",
        encoding="utf-8",
    )
    config = {
        "folders": [str(tmp_path)],
        "devices": [
            {"definition": "opendtu", "device": serial},
            {"definition": "heishamon", "device": base},
            {"definition": "hcpy", "device": appliance},
            {"definition": "acme", "device": "f1"},
        ],
    }
    observers = [
        await open_observer(mosquitto_session, f"{prefix}/#")
        for prefix in (f"solar/{serial}", base, f"homeconnect/{appliance}", f"acme_{run}")
    ]
    try:
        async with make_session(mosquitto_session.port) as session:
            assert await session.wait_connected(5)
            hub = Hub(SystemClock())
            async with Supervisor(hub, {"definitions": DefinitionsAdapter}, {"definitions": config}, mqtt=session):
                await eventually(lambda: "def:acme:f1" in hub.devices, what="the pinned devices")
                inverter, heat_pump = f"def:opendtu:{serial}", f"def:heishamon:{base}"
                dishwasher = f"def:hcpy:{appliance}"

                async def heat_pump_answers() -> None:
                    # A real HeishaMon reports the new target on its sensor topic.
                    await eventually(lambda: any(t.endswith("SetDHWTemp") for t, _, _ in observers[1].snapshot()))
                    observers[1].client.publish(f"{base}/main/DHW_Target_Temp", "52")

                answer = asyncio.create_task(heat_pump_answers())
                result = await hub.execute(
                    Command(heat_pump, "dhw", "thermostat", "set_target", {"celsius": 52}), timeout_s=5
                )
                await answer
                assert result.status == "confirmed", result
                with pytest.raises(CommandValidationError, match="maximum 75"):
                    await hub.execute(Command(heat_pump, "dhw", "thermostat", "set_target", {"celsius": 80}))
                commands = [
                    Command(inverter, "main", "level", "set", {"percent": 60}),
                    Command(inverter, "main", "on_off", "off"),
                    Command(inverter, "main", "on_off", "on"),
                    Command(heat_pump, "main", "on_off", "on"),
                    Command(heat_pump, "main", "on_off", "off"),
                    Command(heat_pump, "main", "thermostat", "set_mode", {"mode": "heat"}),
                    Command(heat_pump, "main", "thermostat", "set_mode", {"mode": "off"}),
                    Command(dishwasher, "main", "on_off", "on"),
                    Command(dishwasher, "main", "on_off", "off"),
                    Command("def:acme:f1", "main", "fan", "set_preset", {"preset": 'night "quiet"'}),
                ]
                for command in commands:
                    result = await hub.execute(command, timeout_s=0.01)
                    assert result.status in ("sent", "timeout"), (command, result)
                expected = [
                    [
                        (f"solar/{serial}/cmd/limit_nonpersistent_relative", b"60"),
                        (f"solar/{serial}/cmd/power", b"0"),
                        (f"solar/{serial}/cmd/power", b"1"),
                    ],
                    [
                        (f"{base}/commands/SetDHWTemp", b"52"),
                        (f"{base}/main/DHW_Target_Temp", b"52"),
                        (f"{base}/commands/SetHeatpump", b"1"),
                        (f"{base}/commands/SetHeatpump", b"0"),
                        (f"{base}/commands/SetOperationMode", b"4"),
                        (f"{base}/commands/SetOperationMode", b"3"),
                    ],
                    [
                        (f"homeconnect/{appliance}/set", b'{"uid": 539, "value": 2}'),
                        (f"homeconnect/{appliance}/set", b'{"uid": 539, "value": 1}'),
                    ],
                    [(f"acme_{run}/f1/set", b'{"preset": "night \\"quiet\\""}')],
                ]
                for observer, want in zip(observers, expected, strict=True):
                    await eventually(lambda o=observer, w=want: len(o.snapshot()) >= len(w))
                    assert [(t, p) for t, p, _ in observer.snapshot()] == want
    finally:
        for observer in observers:
            observer.close()


def test_overlapping_filters_decode_each_definition_once() -> None:
    def definition(name: str, discover: str) -> Any:
        return load_definition_text(
            f'name = "{name}"\nversion = 1\nmanufacturer = "A"\nmodel = "B"\n[match]\ntopic = "x/{{device}}"\n'
            f'discover = {discover}\n[[state]]\ntopic = "t"\nattribute = "temperature.celsius"\n',
            f"{name}.toml",
        )

    codec = DefinitionCodec([definition("a", "true"), definition("b", "false")], [Instance("b", "dev")])
    assert codec.subscriptions() == ["x/+/t", "x/dev/t"]
    # The broker delivers x/dev/t once per matching filter: each delivery decodes for its own definitions.
    first = codec.decode("x/dev/t", b"21", via="x/+/t")
    second = codec.decode("x/dev/t", b"21", via="x/dev/t")
    assert [u.device_id for u in first.updates] == ["def:a:dev"]
    assert [u.device_id for u in second.updates] == ["def:b:dev"]


async def test_a_definition_can_say_how_its_device_toggles() -> None:
    # on_off.toggle was not expressible: a definition can now map it to the device's own TOGGLE, and the hub
    # confirms it from the state the device reports (the opposite of what it was).
    definition = load_definition_text(
        'name = "acme"\nversion = 1\nmanufacturer = "Acme"\nmodel = "P"\n[match]\ntopic = "acme/{device}"\n'
        'discover = "state"\n[[state]]\ntopic = "state"\npath = "power"\nattribute = "on_off.on"\n'
        'values = { "ON" = true, "OFF" = false }\n[[command]]\ncommand = "on_off.toggle"\ntopic = "set"\n'
        'payload = \'{"power": "TOGGLE"}\'\n', "acme.toml")
    codec = DefinitionCodec([definition], [])
    decoded = codec.decode("acme/p1/state", b'{"power": "ON"}')
    assert [u.value for u in decoded.updates] == [True]
    topic, payload, _, _ = codec.encode(Command("def:acme:p1", "main", "on_off", "toggle"))
    assert (topic, orjson.loads(payload)) == ("acme/p1/set", {"power": "TOGGLE"})
    hub = Hub(SimulatedClock(0))
    hub.upsert_device(decoded.upserts[0], "definitions")
    hub.apply(decoded.updates)

    async def device(command: Command) -> CommandResult:
        hub.apply(codec.decode("acme/p1/state", b'{"power": "OFF"}').updates)
        return CommandResult("sent")

    hub.set_command_handler("definitions", device)
    result = await hub.execute(Command("def:acme:p1", "main", "on_off", "toggle"), timeout_s=5)
    assert (result.status, result.expected) == ("confirmed", {"on": False})
