"""The SDK's promises to a plugin (issue 19): its own capability works, an adapter's expectation is kept,
an incompatible plugin is refused with a reason; and config errors a maker meets read right."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import gateway.model as model
from gateway.bus import InputRejected
from gateway.cli import main
from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, Command, CommandResult, DeviceInfo, Update
from gateway.sdk import SDK_VERSION, AttributeSpec, CapabilitySpec, register_capability
from gateway.supervisor import sdk_incompatibility


@pytest.fixture
def acme_filter() -> Iterator[str]:
    name = "acmetest.filter"
    yield name
    # The registry is process-wide: leave it as the other tests (and the generated docs) expect it.
    model._REGISTRY.pop(name, None)
    model._GENERATION += 1


def test_a_capability_registered_after_the_hub_started_is_accepted(acme_filter: str) -> None:
    # The hub used to build its table of attributes once, before plugins were imported: every value of a
    # plugin's own capability was "unknown attribute" while /api/capabilities advertised it.
    hub = Hub(SystemClock())
    rejected: list[InputRejected] = []
    hub.bus.subscribe(InputRejected, rejected.append)
    register_capability(CapabilitySpec(acme_filter, {
        "life_percent": AttributeSpec("integer", unit="%", minimum=0, maximum=100)}, description="Filter"))
    support = CapabilitySupport(frozenset({"life_percent"}))
    hub.upsert_device(DeviceInfo("acme:p1", "Purifier", "acme", {"main": {acme_filter: support}}), "acme")
    hub.apply([Update("acme:p1", "main", acme_filter, "life_percent", 83)])
    assert [r.message for r in rejected] == []
    assert hub.devices["acme:p1"].value("main", acme_filter, "life_percent") == 83
    hub.apply([Update("acme:p1", "main", acme_filter, "life_percent", 180)])  # its range is still checked
    assert len(rejected) == 1 and "life_percent" in rejected[0].message


async def test_the_adapters_own_expectation_is_what_confirms() -> None:
    # A fan whose speeds the model does not know (no speed_steps): the adapter says it will report 67.
    hub = Hub(SystemClock())
    fan = CapabilitySupport(frozenset({"on", "speed_percent"}), frozenset({"set_speed"}))
    hub.upsert_device(DeviceInfo("test:fan", "Fan", "test", {"main": {"fan": fan}}), "test")
    hub.apply([Update("test:fan", "main", "fan", "speed_percent", 0)])

    async def handler(command: Command) -> CommandResult:
        asyncio.get_running_loop().call_later(0.01, hub.apply, [Update("test:fan", "main", "fan", "speed_percent", 67)])
        return CommandResult("sent", "published", expected={"speed_percent": 67})

    hub.set_command_handler("test", handler)
    result = await hub.execute(Command("test:fan", "main", "fan", "set_speed", {"percent": 50}), timeout_s=2)
    assert (result.status, result.expected) == ("confirmed", {"speed_percent": 67})


def test_a_plugin_needing_another_sdk_is_refused_with_the_reason() -> None:
    class Future:
        requires_sdk = ">=2.0,<3"

    class Fits:
        requires_sdk = f">={SDK_VERSION},<2"

    class Broken:
        requires_sdk = "version two"

    assert "needs the Hearth plugin SDK >=2.0,<3" in (sdk_incompatibility(Future) or "")
    assert f"this gateway has SDK {SDK_VERSION}" in (sdk_incompatibility(Future) or "")
    assert sdk_incompatibility(Fits) is None
    assert sdk_incompatibility(object) is None
    assert "not a version specifier" in (sdk_incompatibility(Broken) or "")


# ---------------------------------------------------------------- config check, as a maker meets it

BROKEN_DEFINITION = """\
name = "acme-purifier"
version = 1
manufacturer = "Acme"
model = "AP-1"

[match]
topic = "acme/{device}"
discover = "state"

[[state]]
topic = "state"
path = "power"
attribute = "on_off.on"
values = { "ON" = true, "OFF" = false }

[[state]]
topic = "state"
path = "temp"
attribute = "temperature.celsius"
unit = "furlong"
"""


def test_config_check_reports_core_adapter_and_definition_errors_together_in_file_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "acme.toml").write_text(BROKEN_DEFINITION)
    config = tmp_path / "config.toml"
    config.write_text(textwrap.dedent(f"""\
        [adapters.zigbee2mqtt]
        base_topic = "zigbee2mqtt/#"
        colour = "red"

        [mqtt]
        port = "abc"
        password = 12345

        [adapters.definitions]
        folders = ["{defs}"]
        """))
    assert main(["config", "check", str(config)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"error: {config}:2: adapters.zigbee2mqtt.base_topic: must be a plain topic without MQTT wildcards "
        "('+', '#') or NUL (got 'zigbee2mqtt/#')",
        f"error: {config}:3: adapters.zigbee2mqtt.colour: unknown key (the zigbee2mqtt adapter's settings here: "
        "enabled, base_topic)",
        f"error: {config}:6: mqtt.port: Input should be a valid integer, unable to parse string as an integer "
        "(got 'abc')",
        f"error: {config}:7: mqtt.password: Input should be a valid string",  # the value is never echoed
        f"error: {defs / 'acme.toml'}:20: state[1].unit: temperature.celsius is in °C; a payload unit 'furlong' "
        "cannot be converted to it (units: C, F, K, °C, °F, ℃, ℉)",
    ]


def test_definition_check_and_a_replay_with_a_broken_definition(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "acme.toml").write_text(BROKEN_DEFINITION)
    assert main(["definition", "check", str(defs / "acme.toml")]) == 2
    assert f"{defs / 'acme.toml'}:20: state[1].unit" in capsys.readouterr().err
    (defs / "acme.toml").write_text(BROKEN_DEFINITION.replace('unit = "furlong"', 'unit = "°F"'))
    assert main(["definition", "check", str(defs)]) == 0
    assert capsys.readouterr().out == "ok: 1 definition (acme-purifier)\n"

    # A replay whose definitions adapter cannot start: the problem once, with its place, no traceback, exit 1.
    (defs / "acme.toml").write_text(BROKEN_DEFINITION)
    config = tmp_path / "config.toml"
    config.write_text(f'[adapters.definitions]\nfolders = ["{defs}"]\n')
    capture = tmp_path / "day.jsonl"
    capture.write_text('{"t": 1700000000, "topic": "acme/p1/state", "payload": {"power": "ON"}}\n')
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "replay", "-c", str(config), str(capture)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert run.stdout.count("state[1].unit") == 1
    assert "adapter definitions failed" in run.stderr


def test_a_definition_can_use_a_plugins_dotted_capability_and_toggle(tmp_path: Path) -> None:
    # Split at the first dot, 'acme.filter.life_percent' used to read as capability 'acme'. A subprocess:
    # the capability registry is process-wide.
    definition = tmp_path / "acme.toml"
    text = BROKEN_DEFINITION.replace('path = "temp"\nattribute = "temperature.celsius"\nunit = "furlong"',
                                     'path = "filter"\nattribute = "acmetest.filter.life_percent"')
    text += '\n[[command]]\ncommand = "on_off.toggle"\ntopic = "set"\npayload = \'{"power": "TOGGLE"}\'\n'
    definition.write_text(text)
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from gateway.cli import main
        from gateway.sdk import AttributeSpec, CapabilitySpec, register_capability
        sys.exit(main(["definition", "check", {str(definition)!r}]) if len(sys.argv) > 1 and sys.argv[1] == "bare"
                 else (register_capability(CapabilitySpec("acmetest.filter", {{
                     "life_percent": AttributeSpec("integer", unit="%", minimum=0, maximum=100)}})),
                       main(["definition", "check", {str(definition)!r}]))[1])
        """)
    bare = subprocess.run([sys.executable, "-c", script, "bare"], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2
    assert "unknown capability 'acmetest.filter'" in bare.stderr
    assert "its plugin installed" in bare.stderr
    registered = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout == "ok: 1 definition (acme-purifier)\n"
