"""``hearth plugin check`` (gateway.devkit.conformance): a well-behaved plugin passes every check; a plugin that
breaks the contract fails, with each of its mistakes named (device, message, call) and exit code 1; usage errors
exit 2. The plugins are tests/fixtures/plugins/hearth_good and hearth_bad, given as ``module:Class``.

Nothing here asserts a duration: the blocking plugin sleeps 0.6 s against a 0.25 s threshold, and only "was it
seen, and where" is checked."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway.devkit import conformance
from gateway.devkit.conformance import (
    CHECK_NAMES,
    Options,
    Target,
    check_plugin,
    format_reports,
    fuzz_payloads,
    id_problem,
    implausible,
    resolve_targets,
    sample_args,
)
from gateway.model import capability
from gateway.sdk import AdapterContext, Command, CommandResult

PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "plugins"
# Fuzzing kept short here (the defaults are for a maker's CI): enough payloads to reach every kind of mistake.
FAST = {"fuzz_payloads": 80, "fuzz_time_s": 3.0}


@pytest.fixture(scope="module", autouse=True)
def plugins_on_path() -> Iterator[None]:
    sys.path.insert(0, str(PLUGINS))
    try:
        yield
    finally:
        sys.path.remove(str(PLUGINS))
        for module in [m for m in sys.modules if m.split(".")[0] in ("hearth_good", "hearth_bad")]:
            del sys.modules[module]


def check(name: str | None, *, as_json: bool = False, capture: list[str] | None = None, config: str | None = None,
          **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(name=name, capture=capture, config=config, json=as_json, out=out, err=err,
                              **{**FAST, **options})
    code = conformance.run(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bad(plugins_on_path: None) -> tuple[int, str]:
    code, out, _ = check("hearth_bad:BadAdapter")
    return code, out


@pytest.fixture(scope="module")
def good(plugins_on_path: None) -> tuple[int, dict[str, Any]]:
    code, out, _ = check("hearth_good:GoodAdapter", as_json=True)
    return code, json.loads(out)


def rows(text: str) -> dict[str, str]:
    """check name -> its status, from the table."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("PASS", "FAIL", "SKIP"):
            name = "device ids" if parts[1] == "device" else parts[1]
            found[name] = parts[0]
    return found


# ------------------------------------------------------------------------------------------------ the good plugin


def test_a_good_plugin_passes_every_check(good: tuple[int, dict[str, Any]]) -> None:
    code, document = good
    assert code == 0
    assert document["passed"] is True
    [plugin] = document["plugins"]
    assert plugin["name"] == "good" and plugin["target"] == "hearth_good:GoodAdapter"
    statuses = {c["check"]: c["status"] for c in plugin["checks"]}
    assert list(statuses) == list(CHECK_NAMES)
    assert set(statuses.values()) == {"PASS"}, plugin["checks"]
    reasons = {c["check"]: c["reason"] for c in plugin["checks"]}
    assert "plug.jsonl" in reasons["callbacks"]  # its own captures, found by convention
    assert "good/+/state" in reasons["fuzz"] and "reported as bad input" in reasons["fuzz"]
    assert "2 devices" in reasons["device ids"]


def test_a_good_plugins_table_is_readable() -> None:
    code, out, _ = check("hearth_good:GoodAdapter", fuzz_payloads=20)
    assert code == 0
    assert out.splitlines()[0] == "good  (hearth_good:GoodAdapter)"
    assert rows(out) == dict.fromkeys(CHECK_NAMES, "PASS")
    assert out.rstrip().endswith("good: PASS")


# ------------------------------------------------------------------------------------------------ the bad plugin


def test_a_bad_plugin_fails_with_exit_code_1(bad: tuple[int, str]) -> None:
    code, out = bad
    assert code == 1
    assert rows(out) == {"loads": "PASS", "config": "PASS", "start": "PASS", "device ids": "FAIL", "values": "FAIL",
                         "callbacks": "FAIL", "commands": "FAIL", "fuzz": "FAIL", "blocking": "FAIL", "stop": "PASS",
                         "leaks": "FAIL"}, out
    assert out.rstrip().splitlines()[-1] == (
        "bad: FAIL (7 of 11 checks failed: device ids, values, callbacks, commands, fuzz, blocking, leaks)")


def test_an_id_without_its_source_is_named(bad: tuple[int, str]) -> None:
    assert "start(): device id 'Bad-Sensor-1' has no source: ids are 'bad:<native id>'" in bad[1]


def test_wrong_units_and_types_are_named_with_the_capture_line(bad: tuple[int, str]) -> None:
    out = bad[1]
    assert "bad.jsonl:1 (bad/s1/state): bad:s1: power_meter.watts: expected number, got str" in out
    assert "bad.jsonl:1 (bad/s1/state): bad:s1: temperature.celsius = 2950 is outside the plausible" in out


def test_an_exception_out_of_a_callback_is_named_with_its_place(bad: tuple[int, str]) -> None:
    assert ("bad.jsonl:3 (bad/s1/state): the callback raised JSONDecodeError: Expecting value: line 1 column 1 "
            "(char 0) at hearth_bad/__init__.py:") in bad[1]


def test_fuzzing_names_each_kind_of_exception(bad: tuple[int, str]) -> None:
    out = bad[1]
    fuzz = out[out.index("FAIL  fuzz"):out.index("  blocking")]
    assert "bad/+/state: raised JSONDecodeError" in fuzz
    assert "raised AttributeError: 'NoneType' object has no attribute 'get'" in fuzz  # `null` is valid JSON
    assert "report bad input with ctx.report_bad_input, never raise" in fuzz


def test_a_call_that_blocks_the_loop_is_named(bad: tuple[int, str]) -> None:
    out = bad[1]
    blocking = out[out.index("FAIL  blocking"):out.index("  stop")]
    assert "hearth_bad/__init__.py:" in blocking and "in on_state: time.sleep(BLOCK_S)" in blocking
    assert "first during the callback for bad.jsonl:2 (bad/s1/state)" in blocking


def test_commands_that_raise_or_refuse_without_a_reason_are_named(bad: tuple[int, str]) -> None:
    out = bad[1]
    assert "bad:s1 main on_off.off(): execute() raised RuntimeError: relay stuck at hearth_bad/__init__.py:" in out
    assert "bad:s1 main on_off.on(): returned 'failed' without a message saying why" in out


def test_leaked_task_thread_and_subscription_are_named(bad: tuple[int, str]) -> None:
    out = bad[1]
    assert "task 'bad-poller' (BadAdapter._poll_forever) still running after stop()" in out
    assert "thread 'bad-worker' (running Event.wait) still alive after stop()" in out
    assert "MQTT subscription 'bad/+/state' not undone by stop()" in out


# ------------------------------------------------------------------------------------------------ loading and config


class SyncAdapter:
    def start(self, ctx: AdapterContext) -> None: ...

    async def stop(self) -> None: ...


class FutureAdapter:
    requires_sdk: ClassVar[str] = ">=9,<10"

    async def start(self, ctx: AdapterContext) -> None: ...

    async def stop(self) -> None: ...

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("failed", "nothing here")


class FailingStartAdapter:
    name = "failing"

    async def start(self, ctx: AdapterContext) -> None:
        raise ValueError("no such port")

    async def stop(self) -> None: ...

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("failed", "not running")


class ClockStartAdapter:
    """Waits on the gateway's clock in start (for a bridge's answer, say): time passes for it, as in the gateway."""

    name = "clocked"

    async def start(self, ctx: AdapterContext) -> None:
        await ctx.clock.sleep(3)

    async def stop(self) -> None: ...

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("failed", "no devices")


class HangingStartAdapter(ClockStartAdapter):
    name = "hanging"

    async def start(self, ctx: AdapterContext) -> None:
        await asyncio.Event().wait()


class TaskFailAdapter(ClockStartAdapter):
    """Its message callback starts a task (the right way, ctx.create_task) that fails."""

    name = "taskfail"

    async def start(self, ctx: AdapterContext) -> None:
        assert ctx.mqtt is not None
        self.ctx = ctx
        self.unsubscribe = ctx.mqtt.subscribe("tf/#", self.on_message)

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        self.ctx.create_task(self.refresh(topic), "refresh")

    async def refresh(self, topic: str) -> None:
        raise LookupError(f"nothing known about {topic}")

    async def stop(self) -> None:
        self.unsubscribe()


class ExecutorAdapter(ClockStartAdapter):
    """Hands a blocking wait to the loop's executor and never ends it."""

    name = "executor"
    release = threading.Event()

    async def start(self, ctx: AdapterContext) -> None:
        self.job = asyncio.get_running_loop().run_in_executor(None, self.wait_for_the_serial_port)

    def wait_for_the_serial_port(self) -> None:
        self.release.wait(30)


def test_work_left_running_in_the_executor_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conformance, "THREAD_GRACE_S", 0.2)
    try:
        leaks = check_plugin(Target(None, f"{__name__}:ExecutorAdapter")).check("leaks")
    finally:
        ExecutorAdapter.release.set()
    assert leaks.status == "FAIL"
    [problem] = leaks.problems
    assert "(a worker of the loop's executor: what asyncio.to_thread or run_in_executor gave it) still alive" in problem
    assert "test_conformance.py:" in problem and "in wait_for_the_serial_port: self.release.wait(30)" in problem


def test_a_start_waiting_on_the_clock_passes_and_one_that_hangs_fails() -> None:
    assert check_plugin(Target(None, f"{__name__}:ClockStartAdapter")).check("start").status == "PASS"
    report = check_plugin(Target(None, f"{__name__}:HangingStartAdapter"), options=Options(start_limit_s=0.5))
    assert report.check("start").status == "FAIL"
    assert report.check("start").reason == "start() did not return within 0.5 s"
    assert report.check("leaks").status == "PASS"


def test_a_failing_task_is_named(tmp_path: Path) -> None:
    capture = tmp_path / "tf.jsonl"
    capture.write_text('{"t": 1772352000, "source": "mqtt", "topic": "tf/a", "payload": "1"}\n', encoding="utf-8")
    report = check_plugin(Target(None, f"{__name__}:TaskFailAdapter"), captures=[capture],
                          options=Options(fuzz_payloads=5))
    callbacks = report.check("callbacks")
    assert callbacks.status == "FAIL"
    assert callbacks.problems == ["tf.jsonl:1 (tf/a): a task of the adapter raised LookupError: nothing known about "
                                  "tf/a at devkit/test_conformance.py:" + callbacks.problems[0].rsplit(":", 1)[1]]
    assert "in refresh" in callbacks.problems[0]


def test_a_class_that_is_not_an_adapter_fails_to_load() -> None:
    report = check_plugin(Target(None, f"{__name__}:SyncAdapter"))
    loads = report.check("loads")
    assert loads.status == "FAIL"
    assert "start() is not an async method (write async def start(...))" in loads.problems
    assert "it has no execute() method" in loads.problems
    assert [c.status for c in report.checks[1:]] == ["SKIP"] * (len(CHECK_NAMES) - 1)


def test_a_plugin_for_another_sdk_fails_to_load_and_says_why() -> None:
    loads = check_plugin(Target(None, f"{__name__}:FutureAdapter")).check("loads")
    assert loads.status == "FAIL"
    assert any("needs the Hearth plugin SDK >=9,<10" in p for p in loads.problems)


def test_a_module_that_does_not_import_is_named() -> None:
    code, out, _ = check("no_such_plugin_module:Adapter")
    assert code == 1
    assert "FAIL  loads       cannot import no_such_plugin_module:Adapter: ModuleNotFoundError" in out


def test_a_start_that_raises_is_named_and_the_rest_skipped() -> None:
    report = check_plugin(Target(None, f"{__name__}:FailingStartAdapter"))
    assert report.name == "failing"  # the class's own name attribute
    start = report.check("start")
    assert start.status == "FAIL" and "start() raised ValueError: no such port" in start.reason
    assert "test_conformance.py" in start.reason
    assert report.check("fuzz").status == "SKIP" and report.check("leaks").status == "PASS"


def test_a_config_its_model_refuses_fails_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[adapters.good]\nbase_topic = "good"\ncolour = "red"\n', encoding="utf-8")
    code, out, _ = check("hearth_good:GoodAdapter", config=str(config))
    assert code == 1
    assert f"FAIL  config      its config_model refuses [adapters.good] of {config}" in out
    assert "adapters.good.colour: Extra inputs are not permitted" in out


def test_the_given_config_and_captures_are_used(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[adapters.good]\nbase_topic = "plugs"\n', encoding="utf-8")
    capture = tmp_path / "more.jsonl"
    capture.write_text('{"t": 1772352000, "source": "mqtt", "topic": "plugs/p9/state", "payload": {"power": 5}}\n'
                       '{"t": 1772352001, "source": "ble", "address": "AA:BB:CC:DD:EE:FF"}\n', encoding="utf-8")
    code, out, _ = check("hearth_good:GoodAdapter", as_json=True, config=str(config), capture=[str(capture)],
                         fuzz_payloads=20)
    assert code == 0, out
    reasons = {c["check"]: c["reason"] for c in json.loads(out)["plugins"][0]["checks"]}
    assert "Config: accepts [adapters.good] of" in reasons["config"]
    assert "plugs/+/state" in reasons["start"]
    # Its own capture speaks of good/...: with base_topic "plugs" only the given one makes a device.
    assert reasons["device ids"].startswith("1 device,")
    assert "plug.jsonl, more.jsonl" in reasons["callbacks"] and "1 ble line not played" in reasons["callbacks"]


# ------------------------------------------------------------------------------------------------ usage


def test_usage_errors_exit_2() -> None:
    code, _, err = check("no-such-plugin")
    assert code == 2 and "no adapter plugin named 'no-such-plugin' is installed" in err
    assert "zigbee2mqtt" in err  # what is installed
    code, _, err = check("hearth_good:GoodAdapter", capture=["/nonexistent/x.jsonl"])
    assert code == 2 and "no such capture file: /nonexistent/x.jsonl" in err


def test_by_default_only_plugins_that_are_not_built_in_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    builtins = [ep for ep in conformance._installed() if ep.value.startswith("adapters.")]
    monkeypatch.setattr(conformance, "_installed", lambda: builtins)
    code, _, err = check(None)
    assert code == 2 and "no adapter plugins are installed besides the built-in ones" in err


def test_an_installed_entry_point_is_checked_by_name_and_by_default(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "hearth_good-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hearth-good\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[hearth.adapters]\ngood = hearth_good:GoodAdapter\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    [target] = resolve_targets("good")
    assert (target.name, target.spec) == ("good", "hearth_good:GoodAdapter")
    default = resolve_targets(None)
    assert "good" in [t.name for t in default]
    assert not any(t.spec.startswith("adapters.") for t in default)  # the built-in adapters are left out
    assert resolve_targets("hearth_good:GoodAdapter")[0].name == "good"  # its installed name
    code, out, _ = check("good", fuzz_payloads=20)
    assert code == 0, out
    assert out.splitlines()[0] == "good  (hearth_good:GoodAdapter)"


def test_an_explicit_name_can_be_given_with_module_and_class() -> None:
    [target] = resolve_targets("acme=hearth_good:GoodAdapter")
    assert (target.name, target.spec) == ("acme", "hearth_good:GoodAdapter")


# ------------------------------------------------------------------------------------------------ the pieces


def test_id_problems() -> None:
    assert id_problem("acme:0x00158d0001", "acme", "acme") is None
    assert "has no source" in (id_problem("0x00158d0001", "acme", "acme") or "")
    assert "is not the adapter's name 'acme'" in (id_problem("other:1", "other", "acme") or "")
    assert "empty native id" in (id_problem("acme:", "acme", "acme") or "")
    assert "not lowercase (write 'acme:ab')" in (id_problem("acme:AB", "acme", "acme") or "")
    assert "whitespace" in (id_problem("acme:a b", "acme", "acme") or "")
    assert "says its source is 'acme2'" in (id_problem("acme:1", "acme2", "acme") or "")
    # A built-in adapter may use the source DESIGN.md gives it (ha: for homeassistant); a plugin may not.
    assert id_problem("ha:0affd2", "ha", "homeassistant", builtin=True) is None
    assert id_problem("ha:0affd2", "ha", "homeassistant") is not None
    assert id_problem("zz:0affd2", "ha", "homeassistant", builtin=True) is not None


def test_implausible_values_are_unit_slips() -> None:
    assert implausible("temperature", "celsius", 21.5) is None
    assert "hundredths" in (implausible("temperature", "celsius", 2150) or "")
    assert "mV" in (implausible("battery", "volts", 3000) or "")
    assert implausible("temperature", "celsius", True) is None  # a type error is the hub's to say
    assert implausible("humidity", "percent", 55) is None


def test_sample_args_fit_the_model_and_the_device_limits() -> None:
    level = capability("level")
    assert level is not None
    assert sample_args(level.commands["set"], {}, "2026-01-01T00:00:00.000Z") == {"percent": 50}
    kelvin = capability("color_temperature")
    assert kelvin is not None
    assert sample_args(kelvin.commands["set"], {"kelvin": (2000, 6000)}, "") == {"kelvin": 4000}
    thermostat = capability("thermostat")
    assert thermostat is not None
    mode = sample_args(thermostat.commands["set_mode"], {}, "")["mode"]
    assert mode in thermostat.attributes["mode"].values


def test_fuzzing_is_seeded_and_starts_with_the_classics() -> None:
    import itertools
    import random

    def first(n: int) -> list[tuple[str, bytes]]:
        return list(itertools.islice(fuzz_payloads([b'{"temperature": 21.5}'], random.Random(7)), n))

    payloads = first(200)
    assert payloads == first(200)
    kinds = [kind for kind, _ in payloads]
    assert kinds[:3] == ["empty", "NUL", "invalid UTF-8"]
    assert "deep nesting (array)" in kinds and "temperature = None" in kinds and "without temperature" in kinds
    assert any(kind.startswith("truncated at") for kind in kinds)
    assert (b'{"temperature":1e999}') in [p for _, p in payloads]  # an overflowing float, as a device may send


def test_the_table_lists_a_few_problems_and_points_to_json() -> None:
    report = conformance.PluginReport("x", "m:C", [conformance.Check("values", "FAIL", "many",
                                                                     [f"p{i}" for i in range(15)])])
    text = format_reports([report], shown=3)
    assert "- p2" in text and "- p3" not in text and "… 12 more (--json lists all)" in text


# ------------------------------------------------------------------------------------------------ acceptance


def test_a_plugin_made_by_plugin_new_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.devkit.scaffold import create

    folder = create("scaffolded", tmp_path)
    monkeypatch.syspath_prepend(str(folder / "src"))
    try:
        code, out, _ = check("hearth_scaffolded.adapter:ScaffoldedAdapter")
    finally:
        for module in [m for m in sys.modules if m.split(".")[0] == "hearth_scaffolded"]:
            del sys.modules[module]
    assert code == 0, out
    assert rows(out) == dict.fromkeys(CHECK_NAMES, "PASS"), out
    assert "scaffolded.jsonl" in out  # its own capture, found in the package by convention
