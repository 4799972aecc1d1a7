"""The fuzzing campaign: hypothesis-generated inputs over every codec, the config, profile and definition
loaders, and the HTTP API of a running gateway. Every input is counted; a defect is an exception that is
not the target's way of saying "bad input" (codecs: problems in their result, ``CodecError``, and
``CommandValidationError`` from an encode; loaders: ``ConfigError``), an update the capability model
refuses, or an API answer of 5xx.

Inputs are shaped like the real thing: recorded messages (tests/fixtures/*/capture.jsonl) with a value
replaced, cut or flipped, on topics that exist, beside plain junk. A stateful codec is primed with its
recorded capture and fed one message per input, and built again every ``_REBUILD_EVERY`` inputs (a junk
bridge/devices may have emptied it).

    python -m tests.campaigns.run fuzz --inputs 1000000      # the long run (all targets share it)
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
# A primed codec is rebuilt this often: a junk discovery message may have taken its devices away.
_REBUILD_EVERY = 500
# Examples per hypothesis run; the driver runs batches until the count or the time is reached (checked
# between batches: small enough that a time budget is kept on a slow machine).
_BATCH = 100

# ---------------------------------------------------------------------------------------------- strategies

_scalar = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12)
           | st.sampled_from(["ON", "OFF", "on", "off", "true", "false", "", "nan", "1e999", "-0", "null",
                              "0x1F", "\x00", "Online", "Offline", "toggle", "open", "close", "100", "-1"]))
json_value = st.recursive(_scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c,
                                                                                        max_size=4), max_leaves=10)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _replace_in(value: Any, path: list[int], new: Any) -> Any:
    """``value`` with the item ``path`` points at (indices taken modulo the container's size) replaced."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return new
    if isinstance(value, dict):
        key = sorted(value, key=str)[path[0] % len(value)]
        return {**value, key: _replace_in(value[key], path[1:], new)}
    index = path[0] % len(value)
    return [*value[:index], _replace_in(value[index], path[1:], new), *value[index + 1:]]


@st.composite
def mutated_payload(draw: st.DrawFn, payloads: list[Any]) -> bytes:
    """A recorded payload with one change: a value replaced, a key added or removed, bytes cut or flipped."""
    base = draw(st.sampled_from(payloads)) if payloads else draw(json_value)
    how = draw(st.integers(0, 5))
    if how == 0 and isinstance(base, (dict, list)):
        path = draw(st.lists(st.integers(0, 50), min_size=1, max_size=4))
        return _dumps(_replace_in(base, path, draw(json_value)))
    if how == 1 and isinstance(base, dict):
        extra = draw(st.dictionaries(st.sampled_from(sorted(base, key=str)) | st.text(max_size=8), json_value,
                                     max_size=3))
        return _dumps({**base, **extra})
    if how == 2 and isinstance(base, dict) and base:
        drop = draw(st.sampled_from(sorted(base, key=str)))
        return _dumps({k: v for k, v in base.items() if k != drop})
    raw = base.encode() if isinstance(base, str) else _dumps(base)
    if how == 3:
        return raw[:draw(st.integers(0, len(raw)))]
    if how == 4 and raw:
        data = bytearray(raw)
        for position, mask in draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)),
                                            max_size=3)):
            data[position] ^= mask
        return bytes(data)
    return raw


def message_strategy(topics: list[str], payloads: list[Any]) -> st.SearchStrategy[tuple[str, bytes]]:
    topic = st.sampled_from(topics) | st.text(max_size=40) | st.sampled_from(topics).map(lambda t: t + "/x")
    payload = (mutated_payload(payloads) | json_value.map(_dumps) | st.binary(max_size=80))
    return st.tuples(topic, payload)


def _capture(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / name / "capture.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip() and line.lstrip().startswith("{")]


def _payload_bytes(payload: Any) -> bytes:
    return payload.encode() if isinstance(payload, str) else _dumps(payload)


# ---------------------------------------------------------------------------------------------- targets


class Defect(AssertionError):
    """What a campaign reports: an escaped exception, a 5xx, a value the model refuses."""


@dataclass
class Target:
    name: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]
    close: Callable[[], None] = lambda: None


def _model_check(updates: Any) -> None:
    from gateway.model import capability

    for update in updates:
        spec = capability(update.capability)
        problem = None if spec is None else spec.attributes[update.attribute].check(update.value)
        if spec is None or problem is not None:
            raise Defect(f"decoded update outside the model: {update!r} ({problem or 'unknown capability'})")


_COMMANDS: list[tuple[str, str, dict[str, Any]]] = [
    ("on_off", "on", {}), ("on_off", "toggle", {}), ("level", "set", {"percent": 40}),
    ("color_temperature", "set", {"kelvin": 2700}), ("color", "set", {"hue": 120, "saturation": 50}),
    ("cover", "open", {}), ("thermostat", "set_target", {"celsius": 21}), ("lock", "lock", {}),
]
_command_args = st.one_of(st.sampled_from(_COMMANDS), st.tuples(
    st.sampled_from(sorted({c for c, _, _ in _COMMANDS})), st.sampled_from(sorted({c for _, c, _ in _COMMANDS})),
    st.dictionaries(st.sampled_from(["percent", "kelvin", "hue", "saturation", "celsius", "x", "y", "position"]),
                    _scalar, max_size=3)))


class _CodecTarget:
    """A codec primed with its recorded capture, fed one (topic, payload) and maybe one command per input."""

    def __init__(self, name: str, make: Callable[[], Any], capture: str) -> None:
        self.name = name
        self._make = make
        messages = _capture(capture)
        self._prime = [(m["topic"], _payload_bytes(m["payload"])) for m in messages if "topic" in m]
        topics = sorted({t for t, _ in self._prime})
        payloads = [m["payload"] for m in messages if "topic" in m]
        self.strategy = st.tuples(message_strategy(topics, payloads),
                                  st.none() | st.tuples(st.integers(0, 10_000), _command_args))
        self._codec: Any = None
        self._device_ids: list[tuple[str, str]] = []
        self._fed = 0

    def _fresh(self) -> Any:
        codec = self._make()
        ids: dict[tuple[str, str], None] = {}
        for topic, payload in self._prime:
            out = codec.decode(topic, payload)
            for info in getattr(out, "upserts", ()):
                for component in getattr(info, "components", {}) or {"main": None}:
                    ids[(info.id, component)] = None
        self._device_ids = list(ids)
        self._fed = 0
        return codec

    def check(self, value: tuple[tuple[str, bytes], Any]) -> None:
        from gateway.errors import CodecError, CommandValidationError
        from gateway.model.types import Command

        if self._codec is None or self._fed >= _REBUILD_EVERY:
            self._codec = self._fresh()
        self._fed += 1
        (topic, payload), command = value
        try:
            out = self._codec.decode(topic, payload)
        except CodecError:  # a codec's documented refusal (the adapter counts it as bad input)
            out = None
        _model_check(getattr(out, "updates", ()))
        encode = getattr(self._codec, "encode", None)
        if command is not None and encode is not None and self._device_ids:
            index, (capability, name, args) = command
            device_id, component = self._device_ids[index % len(self._device_ids)]
            with contextlib.suppress(CodecError, CommandValidationError):
                encode(Command(device_id, component, capability, name, args))


def _codec_targets() -> list[Target]:
    from adapters.definitions.codec import DefinitionCodec
    from adapters.definitions.format import load_definitions
    from adapters.homeassistant.codec import HomeAssistantCodec
    from adapters.homie.codec import HomieCodec
    from adapters.shelly.mqtt_codec import ShellyMqttCodec
    from adapters.tasmota.codec import TasmotaCodec
    from adapters.zigbee2mqtt.codec import Zigbee2MqttCodec

    shipped = load_definitions([])
    made = [
        _CodecTarget("codec:zigbee2mqtt", Zigbee2MqttCodec, "z2m"),
        _CodecTarget("codec:tasmota", TasmotaCodec, "tasmota"),
        _CodecTarget("codec:shelly", ShellyMqttCodec, "shelly"),
        _CodecTarget("codec:homeassistant", lambda: HomeAssistantCodec(skip_native=()), "homeassistant"),
        _CodecTarget("codec:homie", HomieCodec, "homie"),
        _CodecTarget("codec:definitions", lambda: DefinitionCodec(shipped, []), "definitions"),
    ]
    return [Target(t.name, t.strategy, t.check) for t in made] + [_ble_target(), _ble_gateway_target(),
                                                                   _mdns_target()]


def _ble_vectors() -> list[tuple[str, str, bytes, str | None]]:
    """(address, service uuid, data, key) of the recorded BTHome and Xiaomi advertisements."""
    from adapters.ble.decoders import BTHOME_UUID, MIBEACON_UUID

    out = []
    for name, uuid in (("bthome_ble_vectors.jsonl", BTHOME_UUID), ("xiaomi_ble_vectors.jsonl", MIBEACON_UUID)):
        for line in (FIXTURES / "ble" / name).read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            if "data" in item and "address" in item:
                out.append((item["address"], uuid, bytes.fromhex(item["data"]), item.get("key")))
    return out


def _flip(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    frame = bytearray(data[:cut] if cut < len(data) else data)
    for position, mask in flips:
        if position < len(frame):
            frame[position] ^= mask
    return bytes(frame)


def _ble_target() -> Target:
    """The whole BLE decoder without its safety net (decode_advertisement catches; _decode does not)."""
    from adapters.ble.decoders import (
        BTHOME_UUID,
        MIBEACON_UUID,
        Advertisement,
        DecodeResult,
        DecoderState,
        KeyRing,
        _decode,
        normalize_mac,
    )

    vectors = _ble_vectors()
    keys = KeyRing({normalize_mac(a): k for a, _, _, k in vectors if k})
    state = DecoderState()
    strategy = st.one_of(
        st.tuples(st.integers(0, len(vectors) - 1), st.integers(0, 40),
                  st.lists(st.tuples(st.integers(0, 40), st.integers(1, 255)), max_size=3)),
        st.tuples(st.sampled_from(sorted({a for a, _, _, _ in vectors})), st.sampled_from([BTHOME_UUID, MIBEACON_UUID]),
                  st.binary(max_size=40)))

    def check(value: tuple[Any, ...]) -> None:
        if isinstance(value[0], int):
            address, uuid, data, _ = vectors[value[0]]
            data = _flip(data, value[1], value[2])
        else:
            address, uuid, data = value
        adv = Advertisement(normalize_mac(address), -60, None, {uuid: data}, {}, 1_700_000_000.0)
        result = DecodeResult(adv.address, "ble:" + adv.address)
        _decode(adv, keys, state, result)
        _model_check(result.updates)

    return Target("codec:ble", strategy, check)


def _ble_gateway_target() -> Target:
    from adapters.ble.mqtt_gateway import decoded_field_events, decoded_field_updates, parse_gateway_message

    recorded = [json.loads(line) for line in (FIXTURES / "ble" / "gateways.jsonl").read_text().splitlines()
                if line.strip()]
    strategy = message_strategy(sorted({r["topic"] for r in recorded}), [r["payload"] for r in recorded])

    def check(value: tuple[str, bytes]) -> None:
        topic, payload = value
        try:
            _gateway, _adv, data = parse_gateway_message(topic, payload, 1_700_000_000.0)
        except ValueError:  # documented: "ValueError when it is not usable"
            return
        updates, _problems = decoded_field_updates("ble:aa:bb:cc:dd:ee:ff", data)
        _model_check(updates)
        decoded_field_events("ble:aa:bb:cc:dd:ee:ff", data)

    return Target("codec:ble_gateway", strategy, check)


def _mdns_target() -> Target:
    from adapters.shelly.discovery import BROWSED_TYPES, DiscoveryRegistry
    from gateway.mdns import ServiceRecord

    recorded = _capture("mdns")
    registry = DiscoveryRegistry(max_entries=20)
    txt_key = st.text(max_size=12) | st.binary(max_size=12) | st.sampled_from(
        sorted({k for r in recorded for k in (r.get("properties") or {})}))
    txt_value = st.none() | st.text(max_size=30) | st.binary(max_size=30)
    strategy = st.tuples(
        st.sampled_from([*BROWSED_TYPES, "_other._tcp.local."]),
        st.sampled_from([r["name"].split(".")[0] for r in recorded]) | st.text(max_size=80),
        st.lists(st.ip_addresses().map(str) | st.text(max_size=20), max_size=5).map(tuple),
        st.none() | st.integers(-5, 70000),
        st.dictionaries(txt_key, txt_value, max_size=20) | st.sampled_from(
            [r.get("properties") for r in recorded]) | st.none() | st.text(max_size=10),
        st.integers(0, 3),
    )

    def check(value: tuple[Any, ...]) -> None:
        type_, instance, addresses, port, properties, step = value
        record = ServiceRecord(type_, instance, addresses, port, properties, None)  # type: ignore[arg-type]
        registry.observe(record, 1.0 + step)
        if step == 3:
            registry.remove(type_, instance, 9.0)
        for item in registry.as_list():
            if not (item["port"] is None or 0 < item["port"] <= 65535):
                raise Defect(f"port out of range in a discovered entry: {item!r}")

    return Target("codec:mdns", strategy, check)


# ---------------------------------------------------------------------------------------------- loaders

_TOML_VALUES = ['""', '"x"', "0", "-1", "1e999", "nan", "inf", "-inf", "99999999999999999999", "true", "[]", "{}",
                '["a", 1]', "{ a = 1 }", "1979-05-27T07:32:00Z", "07:32:00", '"07:30"', '"25:99"', '"10 min"',
                '"-5 min"', '"1e400 s"', "0.0", "3.5", '"\\u0000"', '"kitchen"', '"none"', "[[]]", '"*"']
_LINE = re.compile(r"^(\s*[\w\"\-.]+\s*=\s*)(.+)$")


@st.composite
def mutated_toml(draw: st.DrawFn, texts: list[str]) -> str:
    """A real TOML file with a few of its values replaced, lines dropped or duplicated, or bytes spliced."""
    lines = draw(st.sampled_from(texts)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        how = draw(st.integers(0, 4))
        match = _LINE.match(lines[index])
        if how <= 1 and match:
            new = draw(st.sampled_from(_TOML_VALUES) | st.text(max_size=10).map(json.dumps)
                       | st.integers(-10**6, 10**6).map(str) | st.floats(allow_nan=False).map(repr))
            lines[index] = match.group(1) + new
        elif how == 2:
            del lines[index]
        elif how == 3:
            lines.insert(index, lines[index])
        else:
            cut = draw(st.integers(0, len(lines[index])))
            lines[index] = lines[index][:cut] + draw(st.text(max_size=8)) + lines[index][cut:]
    return "\n".join(lines) + "\n"


def _loader_target(name: str, texts: list[str], load: Callable[[str], Any]) -> Target:
    from gateway.errors import ConfigError

    strategy = mutated_toml(texts) | st.text(max_size=200)

    def check(text: str) -> None:
        with contextlib.suppress(ConfigError):
            load(text)

    return Target(name, strategy, check)


def _config_texts() -> list[str]:
    texts = [(ROOT / "config.example.toml").read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").rglob("*.toml"))
              if "[" in p.read_text(encoding="utf-8")][:10]
    from tests.scenes.house import config_text

    texts.append(config_text())
    return texts


def _loader_targets() -> list[Target]:
    from adapters.definitions.format import load_definition_text
    from gateway.config import parse_config
    from gateway.scenes.profile import load_profile_text, shipped_profiles

    profiles = [p.read_text(encoding="utf-8") for p in shipped_profiles().values()]
    profiles += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").rglob("*.toml"))
                 if "[[scenes]]" in p.read_text(encoding="utf-8")]
    definitions = [p.read_text(encoding="utf-8")
                   for p in sorted((ROOT / "adapters" / "definitions" / "definitions").glob("*.toml"))]
    return [
        _loader_target("loader:config", _config_texts(), lambda text: parse_config(text, "fuzz.toml")),
        _loader_target("loader:profile", profiles, lambda text: load_profile_text(text, "fuzz.toml")),
        _loader_target("loader:definitions", definitions, lambda text: load_definition_text(text, "fuzz.toml")),
    ]


# ---------------------------------------------------------------------------------------------- the API


def all_targets(*, api: Any = None) -> list[Target]:
    targets = [*_codec_targets(), *_loader_targets()]
    if api is not None:
        targets.append(api.target())
    return targets


# ---------------------------------------------------------------------------------------------- the driver


@dataclass
class Finding:
    target: str
    kind: str  # the exception's type, or "5xx"
    where: str  # file:line of the innermost frame of the project
    message: str
    input: str
    traceback: str


@dataclass
class TargetResult:
    name: str
    inputs: int = 0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    @property
    def crashes(self) -> int:
        return len(self.findings)


def _where(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if ("/gateway/" in f.filename or "/adapters/" in f.filename)]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "?"
    with contextlib.suppress(ValueError):
        return f"{Path(frame.filename).relative_to(ROOT)}:{frame.lineno}"
    return f"{frame.filename}:{frame.lineno}"


def fuzz_target(target: Target, inputs: int, time_budget_s: float, seed: int | None = None) -> TargetResult:
    """Run ``target`` on ``inputs`` generated inputs (fewer if ``time_budget_s`` runs out first)."""
    result = TargetResult(target.name)
    state: dict[str, Any] = {"last": None}
    seen: set[tuple[str, str]] = set()
    started = time.monotonic()
    deadline = started + time_budget_s
    rng = random.Random(seed)

    def run_one(value: Any) -> None:
        result.inputs += 1
        state["last"] = value
        target.check(value)

    batches = 0
    while result.inputs < inputs and time.monotonic() < deadline:
        batch = min(_BATCH, inputs - result.inputs)
        test = settings(max_examples=batch, database=None, deadline=None, derandomize=False,
                        phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
                        print_blob=False, report_multiple_bugs=False)(given(target.strategy)(run_one))
        before = result.inputs
        try:
            # hypothesis' own seed per batch (reproducible with --seed)
            from hypothesis import seed as hseed

            hseed(rng.getrandbits(64))(test)()
        except Exception as err:  # every escaped exception is a finding
            key = (type(err).__name__, _where(err))
            if key not in seen:
                seen.add(key)
                result.findings.append(Finding(
                    target.name, type(err).__name__, key[1], str(err)[:500], repr(state["last"])[:2000],
                    "".join(traceback.format_exception(err))[-4000:]))
        batches += 1
        if result.inputs == before:  # the strategy is exhausted: nothing more to generate
            break
        if len(seen) >= 5:  # enough to report; the rest is likely the same bugs again
            break
    result.seconds = time.monotonic() - started
    return result


def run_fuzz(targets: list[Target], inputs_per_target: int, time_budget_s: float, *,
             seed: int | None = None, out: Callable[[str], None] = print) -> list[TargetResult]:
    results = []
    deadline = time.monotonic() + time_budget_s
    for index, target in enumerate(targets):
        # The time left, shared by the targets left: a fast target leaves its share to the others.
        per_target_s = max(0.0, deadline - time.monotonic()) / (len(targets) - index)
        result = fuzz_target(target, inputs_per_target, per_target_s, seed)
        results.append(result)
        rate = result.inputs / result.seconds if result.seconds else 0.0
        out(f"fuzz {target.name}: {result.inputs:,} inputs in {result.seconds:.1f} s ({rate:,.0f}/s), "
            f"{result.crashes} crashes")
        for finding in result.findings:
            out(f"  CRASH {finding.kind} at {finding.where}: {finding.message}\n  input: {finding.input}\n"
                + "\n".join("    " + line for line in finding.traceback.splitlines()))
    total = sum(r.inputs for r in results)
    out(f"fuzz: {total:,} inputs over {len(results)} targets, {sum(r.crashes for r in results)} crashes")
    return results


def iter_findings(results: list[TargetResult]) -> Iterator[Finding]:
    for result in results:
        yield from result.findings


__all__ = ["Defect", "Finding", "Target", "TargetResult", "all_targets", "fuzz_target", "run_fuzz"]
