"""The maker's test kit: a pytest plugin, loaded by any pytest run where Hearth is installed (entry point
``pytest11``), so that a plugin package's tests need no conftest of their own.

Fixtures (all prefixed ``hearth_``):

``hearth_mosquitto``
    A real Mosquitto on a free loopback port (:class:`gateway.devkit.mosquitto.Mosquitto`: ``host``, ``port``,
    ``stop()``, ``restart()``), stopped after the test. Skipped with the reason when mosquitto is not installed
    (set ``HEARTH_REQUIRE_MOSQUITTO=1`` to fail instead, as CI should).
``hearth_harness``
    An async factory: ``harness = await hearth_harness(AdapterClass, config={...}, broker=None, name=None)``
    returns a started :class:`gateway.devkit.harness.Harness` (the adapter on a real hub with a simulated
    clock; in-memory MQTT, or a real session with ``broker=hearth_mosquitto``). Every harness it made is
    stopped after the test, and the test fails if the adapter left a task running or its ``stop()`` raised.
    Needs pytest-asyncio (an async test).
``hearth_replay``
    ``report = await hearth_replay(path, config=None)``: :func:`replay`, as a fixture.

Functions (import them: ``from gateway.testing import replay, assert_device, assert_value, assert_published``):

- :func:`replay`: ``hearth replay`` of a capture through every installed adapter, as a typed
  :class:`ReplayReport` (``devices``, ``values``, ``errors``, ``problems``, ``notes``, ``published``).
- :func:`assert_device`, :func:`assert_value`, :func:`assert_published`, :func:`assert_no_problems`: checks
  on a :class:`~gateway.devkit.harness.Harness` or a :class:`ReplayReport` that say, when they fail, what
  there was instead.

Module-level imports stay light (pytest loads this module in every run where Hearth is installed, the
gateway's own included): the gateway's parts are imported when a fixture or function is used.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.devkit.harness import Harness, Published
    from gateway.devkit.mosquitto import Mosquitto
    from gateway.replay import ReplayResult

__all__ = [
    "HarnessFactory",
    "ReplayEntry",
    "ReplayReport",
    "ReplayValue",
    "ReplayedDevice",
    "assert_device",
    "assert_no_problems",
    "assert_published",
    "assert_value",
    "hearth_harness",
    "hearth_mosquitto",
    "hearth_replay",
    "replay",
]

#: ``await hearth_harness(AdapterClass, config=None, *, broker=None, name=None, start_time=None)``
HarnessFactory = Callable[..., Awaitable["Harness"]]

_MISSING: Any = object()


# --------------------------------------------------------------------------------------------- replay


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    """One error or note of a replay: ``t`` (ISO-8601 UTC, or None), who said it, and what."""

    t: str | None
    source: str
    message: str


@dataclass(frozen=True, slots=True)
class ReplayedDevice:
    """A device as replay left it (DESIGN.md contract 5): ``components`` is component -> capability ->
    attribute -> value."""

    id: str
    name: str
    source: str
    manufacturer: str | None
    model: str | None
    area: str | None
    available: bool | None
    components: dict[str, dict[str, dict[str, Any]]]

    def value(self, capability: str, attribute: str, component: str = "main", default: Any = None) -> Any:
        return self.components.get(component, {}).get(capability, {}).get(attribute, default)


@dataclass(frozen=True, slots=True)
class ReplayValue:
    """One attribute's last value in a replay."""

    device_id: str
    component: str
    capability: str
    attribute: str
    value: Any


@dataclass(frozen=True)
class ReplayReport:
    """What ``hearth replay`` made of a capture, typed.

    ``devices``: by id (sorted). ``values``: every attribute's last value (:class:`ReplayValue`). ``errors``: every
    error (the capture's own lines, every adapter's bad input). ``problems``: the errors that are not about the
    capture file itself (what adapters rejected). ``notes``: what adapters understood and deliberately did not
    use. ``published``: what adapters published (``{"t", "topic", "payload", "retain"}``). ``result``: the
    untyped :class:`gateway.replay.ReplayResult`.
    """

    devices: dict[str, ReplayedDevice]
    errors: list[ReplayEntry]
    notes: list[ReplayEntry]
    published: list[dict[str, Any]] = field(default_factory=list)
    result: ReplayResult | None = None

    @property
    def values(self) -> list[ReplayValue]:
        """Every attribute's last value, device by device (sorted by id), as the capture left them."""
        return [ReplayValue(device.id, component, capability, attribute, value)
                for device in self.devices.values()
                for component, capabilities in device.components.items()
                for capability, attributes in capabilities.items()
                for attribute, value in attributes.items()]

    @property
    def problems(self) -> list[ReplayEntry]:
        return [entry for entry in self.errors if entry.source != "capture"]

    def errors_from(self, source: str) -> list[ReplayEntry]:
        """The errors one adapter (or ``"capture"``) reported."""
        return [entry for entry in self.errors if entry.source == source]

    def device(self, device_id: str) -> ReplayedDevice:
        """One device; ``KeyError`` naming the devices there are when it is not known."""
        try:
            return self.devices[device_id]
        except KeyError:
            raise KeyError(f"no device {device_id!r} in the replay (devices: {', '.join(self.devices) or 'none'})") \
                from None

    def value(self, device_id: str, capability: str, attribute: str, component: str = "main") -> Any:
        return self.device(device_id).value(capability, attribute, component)


def _report(result: ReplayResult) -> ReplayReport:
    devices = {
        d["id"]: ReplayedDevice(d["id"], d["name"], d["source"], d.get("manufacturer"), d.get("model"),
                                d.get("area"), d.get("available"), d.get("components") or {})
        for d in result.devices
    }

    def entries(raw: list[dict[str, Any]]) -> list[ReplayEntry]:
        return [ReplayEntry(e.get("t"), str(e.get("source")), str(e.get("message"))) for e in raw]

    return ReplayReport(devices, entries(result.errors), entries(result.notes), list(result.published), result)


async def replay(path: str | os.PathLike[str], config: Config | Mapping[str, Any] | str | os.PathLike[str] | None
                 = None) -> ReplayReport:
    """``hearth replay PATH`` as a :class:`ReplayReport`: the capture through every installed adapter (and
    plugin), a real hub and a simulated clock, with no network.

    ``config``: None (the defaults), a :class:`gateway.config.Config`, the path of a config file, or a mapping
    shaped like one (``{"adapters": {"acme": {"base_topic": "acme"}}}``)."""
    from gateway.config import Config as ConfigModel
    from gateway.config import load_config
    from gateway.replay import replay as run_replay

    loaded: ConfigModel | None
    if config is None or isinstance(config, ConfigModel):
        loaded = config
    elif isinstance(config, Mapping):
        loaded = ConfigModel.model_validate(dict(config))
    else:
        loaded = load_config(config)
    return _report(await run_replay(Path(path), loaded, profiles=[]))


# --------------------------------------------------------------------------------------------- asserts


def _devices_of(source: Any) -> dict[str, Any]:
    devices = getattr(source, "devices", None)
    if not isinstance(devices, dict):
        raise TypeError(f"expected a Harness or a ReplayReport, got {type(source).__name__}")
    return devices


def _components_of(device: Any) -> dict[str, dict[str, dict[str, Any]]]:
    state = getattr(device, "state", None)  # a hub Device
    if isinstance(state, dict):
        return state
    return device.components  # type: ignore[no-any-return]


def _describe_state(device: Any) -> str:
    lines = []
    for component, caps in sorted(_components_of(device).items()):
        for cap, attrs in sorted(caps.items()):
            shown = ", ".join(f"{a}={v!r}" for a, v in attrs.items()) or "(nothing reported)"
            lines.append(f"    {component}.{cap}: {shown}")
    return "\n".join(lines) or "    (no values)"


def _values_equal(expected: Any, actual: Any, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=0.0, abs_tol=tolerance) if tolerance else expected == actual
    return bool(expected == actual)


def assert_device(source: Any, device_id: str, /, **expected: Any) -> Any:
    """Assert that ``source`` (a Harness or a ReplayReport) has the device ``device_id``, and that its fields
    are as given (``name="Purifier"``, ``model=...``, ``available=True``; for a harness any attribute of
    :class:`gateway.model.types.Device`). Returns the device."""
    __tracebackhide__ = True
    devices = _devices_of(source)
    device = devices.get(device_id)
    if device is None:
        known = "\n".join(f"    {d}" for d in sorted(devices)) or "    (none)"
        problems = _problem_lines(source)
        raise AssertionError(f"no device {device_id!r}; the devices there are:\n{known}{problems}")
    wrong = []
    for key, want in expected.items():
        have = getattr(device, key, _MISSING)
        if have is _MISSING:
            wrong.append(f"    {key}: the device has no such field")
        elif not _values_equal(want, have, 0.0):
            wrong.append(f"    {key}: expected {want!r}, got {have!r}")
    if wrong:
        raise AssertionError(f"device {device_id!r}:\n" + "\n".join(wrong))
    return device


def assert_value(source: Any, device_id: str, capability: str, attribute: str, expected: Any = _MISSING, /, *,
                 component: str = "main", tolerance: float = 0.0) -> Any:
    """Assert that the device reported ``capability.attribute`` (on ``component``), equal to ``expected`` when
    given (numbers within ``tolerance``). Fails with the device's values and the problems reported. Returns
    the value."""
    __tracebackhide__ = True
    device = assert_device(source, device_id)
    attrs = _components_of(device).get(component, {}).get(capability)
    where = f"{device_id} {component}.{capability}.{attribute}"
    if attrs is None or attribute not in attrs:
        raise AssertionError(f"{where} was never reported; the device has:\n{_describe_state(device)}"
                             f"{_problem_lines(source)}")
    actual = attrs[attribute]
    if expected is not _MISSING and not _values_equal(expected, actual, tolerance):
        within = f" (within {tolerance:g})" if tolerance else ""
        raise AssertionError(f"{where}: expected {expected!r}{within}, got {actual!r}; the device has:\n"
                             f"{_describe_state(device)}")
    return actual


def assert_published(source: Any, topic: str, payload: Any = _MISSING, /, *, retain: bool | None = None) -> Published:
    """Assert that the adapter published on ``topic`` (an MQTT topic filter: ``+``/``#`` allowed); with
    ``payload``, that one such message had it (bytes and str compared as text; a dict or list compared with the
    message's parsed JSON). Returns the last matching message. ``source``: a Harness."""
    __tracebackhide__ = True
    from gateway.sdk import topic_matches

    published: list[Published] = list(getattr(source, "published", []))
    on_topic = [m for m in published if topic_matches(topic, m.topic) and (retain is None or m.retain == retain)]
    if not on_topic:
        seen = "\n".join(f"    {m.topic}: {m.text[:200]}" for m in published[-20:]) or "    (nothing)"
        raise AssertionError(f"nothing was published on {topic!r}; the adapter published:\n{seen}")
    if payload is _MISSING:
        return on_topic[-1]
    for message in reversed(on_topic):
        if _payload_matches(payload, message):
            return message
    seen = "\n".join(f"    {m.topic}: {m.text[:200]}" for m in on_topic[-20:])
    raise AssertionError(f"no message on {topic!r} had the payload {payload!r}; on that topic were:\n{seen}")


def _payload_matches(expected: Any, message: Published) -> bool:
    if isinstance(expected, bytes):
        return message.payload == expected
    if isinstance(expected, str):
        return message.text == expected
    try:
        return bool(message.json() == expected)
    except ValueError:
        return False


def assert_no_problems(source: Any) -> None:
    """Assert that nothing was rejected: a harness's ``problems``, or a replay's adapter errors."""
    __tracebackhide__ = True
    lines = _problem_lines(source)
    if lines:
        raise AssertionError("problems were reported:" + lines.split(":", 1)[1])


def _problem_lines(source: Any) -> str:
    problems = getattr(source, "problems", [])
    texts = [p if isinstance(p, str) else f"{p.source}: {p.message}" for p in problems]
    if not texts:
        return ""
    shown = "\n".join(f"    {text}" for text in texts[:20])
    more = f"\n    … {len(texts) - 20} more" if len(texts) > 20 else ""
    return f"\n  problems reported:\n{shown}{more}"


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def hearth_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A real Mosquitto of this test's own on a free loopback port (stop, kill, restart it freely)."""
    from gateway.devkit.mosquitto import Mosquitto, MosquittoNotFoundError

    try:
        broker = Mosquitto(tmp_path_factory.mktemp("hearth-mosquitto"))
    except MosquittoNotFoundError as err:
        if os.environ.get("HEARTH_REQUIRE_MOSQUITTO") == "1":
            pytest.fail(str(err), pytrace=False)
        pytest.skip(str(err))
    with broker:
        yield broker


def _harness_fixture() -> Any:
    try:
        import pytest_asyncio
    except ImportError:  # the kit's other parts work without it; this fixture says what it needs

        @pytest.fixture(name="hearth_harness")
        def needs_pytest_asyncio() -> HarnessFactory:
            """Needs pytest-asyncio (``pip install pytest-asyncio``)."""
            pytest.fail("the hearth_harness fixture needs pytest-asyncio: pip install pytest-asyncio", pytrace=False)

        return needs_pytest_asyncio

    @pytest_asyncio.fixture
    async def hearth_harness() -> AsyncIterator[HarnessFactory]:
        """``await hearth_harness(AdapterClass, config=None, *, broker=None, name=None, start_time=None)``: a
        started :class:`gateway.devkit.harness.Harness`; all stopped after the test, which fails if an adapter
        left a task running or its ``stop()`` raised."""
        from gateway.devkit.harness import Harness

        made: list[Harness] = []

        async def factory(adapter_class: type[Any], config: Mapping[str, Any] | None = None, **options: Any) -> Harness:
            harness = Harness(adapter_class, config, **options)
            made.append(harness)
            return await harness.start()

        yield factory
        complaints = []
        for harness in reversed(made):
            await harness.stop()
            if harness.leaked_tasks:
                complaints.append(f"adapter {harness.name} left tasks running after stop(): "
                                  f"{', '.join(harness.leaked_tasks)} (use ctx.create_task, or cancel them in stop)")
            if harness.stop_error is not None:
                complaints.append(f"adapter {harness.name}: stop() raised {type(harness.stop_error).__name__}: "
                                  f"{harness.stop_error}")
        if complaints:
            pytest.fail("\n".join(complaints), pytrace=False)

    return hearth_harness


hearth_harness = _harness_fixture()


@pytest.fixture
def hearth_replay() -> Callable[..., Awaitable[ReplayReport]]:
    """``report = await hearth_replay(path, config=None)``: :func:`replay` (a typed :class:`ReplayReport`)."""
    return replay
