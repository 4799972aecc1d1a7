"""Zigbee2MQTT's device database through ``hearth replay``: the figures of issue 17's breadth test.

``generate.mjs`` (Node, the zigbee-herdsman-converters pinned in ``package-lock.json``) writes a capture with
one device per definition and a state message per readable exposed property (every enum value, binary on
and off, one message per button ``action`` value), and ``expectations.json`` saying what each property is.
This module replays that capture with :func:`gateway.replay.replay` (the ``hearth replay`` path, in-process,
with two observers patched in: a hub that records each update and event, and an MQTT stand-in that counts
the messages, so that every update is attributed to the message, hence the property, that caused it) and
computes the figures that ``tests/adapters/test_z2m_database.py`` holds against ``baseline.json``.

    python -m tests.z2mdb.measure             # figures and the top lists (unmapped properties, units, …)
    python -m tests.z2mdb.measure --top 80    # longer lists
    python -m tests.z2mdb.measure --json      # everything as JSON
    python -m tests.z2mdb.measure --timing    # also replay time and peak memory (a clean subprocess)

Pure Python apart from running ``node generate.mjs`` once per lock file (the output is cached in ``out/``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LOCK = HERE / "package-lock.json"
GENERATOR = HERE / "generate.mjs"
PACKAGE = HERE / "node_modules" / "zigbee-herdsman-converters" / "package.json"
OUT = HERE / "out"
BASELINE = HERE / "baseline.json"
FIGURES = OUT / "figures.json"
REQUIRE_ENV = "HEARTH_REQUIRE_Z2MDB"
UPDATE_ENV = "HEARTH_Z2MDB_UPDATE"
SOURCE = "zigbee2mqtt"
LINKQUALITY = ("connectivity", "lqi")
_LINE = re.compile(r"^[^:\s]+:(\d+): ")
_TOKENS = re.compile(r"[_\-\s]+")


# ------------------------------------------------------------------------------------------ generation


def node_problem() -> str | None:
    """Why the capture cannot be generated here, or None."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed (apt install nodejs npm)"
    if not PACKAGE.is_file():
        return f"{PACKAGE.parent.relative_to(REPO)} is missing (npm ci --prefix tests/z2mdb)"
    return None


def pinned_version() -> str:
    lock = json.loads(LOCK.read_text(encoding="utf-8"))
    return lock["packages"]["node_modules/zigbee-herdsman-converters"]["version"]


def cache_key() -> str:
    digest = hashlib.sha256()
    for path in (LOCK, GENERATOR):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def generate(out_root: Path = OUT) -> Path:
    """The directory with ``capture.jsonl`` and ``expectations.json`` for the pinned package, generated once
    per lock file and generator (older outputs in ``out_root`` are removed)."""
    problem = node_problem()
    if problem is not None:
        raise RuntimeError(problem)
    installed = json.loads(PACKAGE.read_text(encoding="utf-8"))["version"]
    if installed != pinned_version():
        raise RuntimeError(f"node_modules has zigbee-herdsman-converters {installed}, the lock pins "
                           f"{pinned_version()}: run npm ci --prefix tests/z2mdb")
    key = cache_key()
    target = out_root / key
    if (target / "expectations.json").is_file():
        return target
    out_root.mkdir(parents=True, exist_ok=True)
    for old in out_root.iterdir():
        if old.is_dir() and re.fullmatch(r"[0-9a-f]{16}", old.name):
            shutil.rmtree(old, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=out_root))
    try:
        run = subprocess.run(["node", str(GENERATOR), str(work)], cwd=HERE, capture_output=True, text=True,
                             timeout=300, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"node generate.mjs failed ({run.returncode}): {run.stderr.strip()[-2000:]}")
        try:
            work.rename(target)
        except OSError:
            if not (target / "expectations.json").is_file():  # not made meanwhile by another run
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


# ------------------------------------------------------------------------------------------ replay


@dataclass
class Recorder:
    """What the hub was given, message by message (``index``: the n-th MQTT message delivered, -1 before)."""

    index: int = -1
    updates: list[tuple[int, Any, bool]] = field(default_factory=list)  # (index, Update, accepted)
    events: list[tuple[int, Any]] = field(default_factory=list)  # (index, DeviceEventUpdate)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The hub logs a rate-limited warning per rejected input: the figures list them, the terminal need not."""
    logger = logging.getLogger("hearth")
    saved = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(saved)


def observed_replay(capture: Path) -> tuple[Any, Recorder]:
    """``hearth replay`` of ``capture`` (no config, no profiles) with every update and event recorded."""
    import gateway.replay as replay_module

    recorder = Recorder()
    base_hub, base_mqtt = replay_module.Hub, replay_module.ReplayMqtt

    class RecordingHub(base_hub):  # type: ignore[misc,valid-type]
        def apply(self, updates: Any) -> int:
            changed = 0
            counters = self.counters
            record = recorder.updates.append
            for update in updates:
                before = counters["bad_input"]
                changed += base_hub.apply(self, (update,))
                record((recorder.index, update, counters["bad_input"] == before))
            return changed

        def emit_event(self, event: Any) -> None:
            recorder.events.append((recorder.index, event))
            base_hub.emit_event(self, event)

    class RecordingMqtt(base_mqtt):  # type: ignore[misc,valid-type]
        def deliver(self, topic: str, payload: bytes, retain: bool) -> int:
            recorder.index += 1
            return base_mqtt.deliver(self, topic, payload, retain)

    with _quiet(), mock.patch.object(replay_module, "Hub", RecordingHub), \
            mock.patch.object(replay_module, "ReplayMqtt", RecordingMqtt):
        result = asyncio.run(replay_module.replay(capture, profiles=[], keep_devices=True))
    return result, recorder


def _rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def timed_replay(capture: Path) -> dict[str, float]:
    """Replay time and peak memory of the plain ``hearth replay`` path, in a fresh interpreter (so the
    peak is the replay's, not this process's)."""
    run = subprocess.run([sys.executable, "-m", "tests.z2mdb.measure", "--timing-child", str(capture)],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"timed replay failed: {run.stderr.strip()[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _timing_child(capture: Path) -> None:
    import resource

    from gateway.replay import replay

    before = _rss_mb()
    with _quiet():
        start = time.perf_counter()
        result = asyncio.run(replay(capture, profiles=[]))
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"replay_seconds": round(seconds, 2), "peak_rss_mb": round(peak),
                      "rss_before_replay_mb": round(before), "devices": len(result.devices)}))


# ------------------------------------------------------------------------------------------ figures


def button_numbers(action: str) -> set[int]:
    """The button numbers an action value names: its digit tokens (``1_single``, ``on_2``, ``button_3_hold``,
    ``brightness_move_up_2``)."""
    return {int(token) for token in _TOKENS.split(action) if token.isdigit()}


def _error_kind(message: str) -> str:
    """An error without where it happened (line, device name, device id), to group recurring ones."""
    text = _LINE.sub("", message)
    text = re.sub(r"^zigbee2mqtt '[^']*': ", "", text)
    return re.sub(r"zigbee2mqtt:0x[0-9a-f]+", "<device>", text)


@dataclass
class Property:
    device: dict[str, Any]
    key: str
    info: dict[str, Any]
    messages: int = 0
    mapped_messages: int = 0
    error_messages: int = 0
    targets: set[str] = field(default_factory=set)

    @property
    def mapped(self) -> bool:
        return self.mapped_messages > 0


def analyse(out_dir: Path, result: Any, recorder: Recorder) -> dict[str, Any]:
    """Every figure and list, from the generated capture, its expectations and the observed replay."""
    expectations = orjson.loads((out_dir / "expectations.json").read_bytes())
    generator = expectations["generator"]
    devices = expectations["devices"]
    by_name = {d["friendly_name"]: d for d in devices}
    by_id = {f"{SOURCE}:{d['ieee_address'].lower()}": d for d in devices}
    props: dict[tuple[str, str], Property] = {}
    for device in devices:
        for key, info in device["properties"].items():
            if key != "linkquality":
                props[(device["ieee_address"], key)] = Property(device, key, info)

    # The n-th MQTT message delivered: its capture line, and the (device, property, value) it carries.
    line_of: list[int] = []
    carried: list[tuple[dict[str, Any], str, Any] | None] = []
    prefix = SOURCE + "/"
    with (out_dir / "capture.jsonl").open("rb") as file:
        for number, raw in enumerate(file, start=1):
            record = orjson.loads(raw)
            if record.get("source", "mqtt") != "mqtt":
                continue
            line_of.append(number)
            topic, payload = record["topic"], record["payload"]
            device = by_name.get(topic[len(prefix):]) if topic.startswith(prefix) else None
            keys = [k for k in payload if k != "linkquality"] if device and isinstance(payload, dict) else []
            carried.append((device, keys[0], payload[keys[0]]) if len(keys) == 1 else None)
    index_of_line = {line: index for index, line in enumerate(line_of)}

    # Errors, by the message they belong to.
    error_lines: dict[int, list[str]] = defaultdict(list)
    for error in result.errors:
        match = _LINE.match(error["message"])
        error_lines[index_of_line.get(int(match.group(1)), -1) if match else -1].append(error["message"])

    # Updates and events, by message.
    reading_devices: set[str] = set()
    per_message_targets: dict[int, set[str]] = defaultdict(set)
    for index, update, accepted in recorder.updates:
        if not accepted or index < 0 or carried[index] is None:
            continue
        if (update.capability, update.attribute) == LINKQUALITY:
            continue
        per_message_targets[index].add(f"{update.capability}.{update.attribute}")
        if update.value is not None and update.capability != "connectivity":
            reading_devices.add(update.device_id)
    events_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for index, event in recorder.events:
        events_of[index].append(dict(event.data))

    actions_total = actions_presses = actions_right = 0
    wrong: list[dict[str, Any]] = []
    no_press: Counter[str] = Counter()
    no_press_models: dict[str, str] = {}
    action_values: set[str] = set()
    pressed_values: set[str] = set()
    for index, item in enumerate(carried):
        if item is None:
            continue
        device, key, value = item
        prop = props.get((device["ieee_address"], key))
        if prop is None:
            continue
        prop.messages += 1
        targets = per_message_targets.get(index)
        if targets:
            prop.mapped_messages += 1
            prop.targets |= targets
        if index in error_lines:
            prop.error_messages += 1
        if key.startswith("action") and prop.info.get("name") == "action" and isinstance(value, str):
            actions_total += 1
            action_values.add(value)
            events = events_of.get(index, [])
            pressed = [e for e in events if e.get("kind")]
            numbers = button_numbers(value)
            if pressed:
                actions_presses += 1
                pressed_values.add(value)
                if not numbers or all(e.get("button") in numbers for e in pressed):
                    actions_right += 1
            else:
                no_press[value] += 1
                no_press_models.setdefault(value, device["model"])
            if numbers and events and any(e.get("button") not in numbers for e in events):
                wrong.append({"model": device["model"], "action": value, "expected": sorted(numbers),
                              "got": sorted({e.get("button") for e in events}, key=str), "press": bool(pressed)})

    # Phantom capabilities: advertised, never given a value although every property was sent.
    phantom_caps: list[tuple[str, str, str]] = []
    phantom_attrs: Counter[str] = Counter()
    phantom_models: dict[str, list[str]] = defaultdict(list)
    for hub_device in result.hub_devices:
        expected = by_id.get(hub_device.id)
        if expected is None:
            continue
        for component, caps in hub_device.support.items():
            for capability, support in caps.items():
                if capability == "connectivity" or not support.attributes:
                    continue
                state = hub_device.state.get(component, {}).get(capability, {})
                missing = [a for a in support.attributes if state.get(a) is None]
                for attribute in missing:
                    phantom_attrs[f"{capability}.{attribute}"] += 1
                if len(missing) == len(support.attributes):
                    phantom_caps.append((expected["model"], component, capability))
                    if len(phantom_models[capability]) < 5:
                        phantom_models[capability].append(expected["model"])

    by_type: dict[str, dict[str, int]] = {}
    unmapped: dict[tuple[str, str, str], dict[str, Any]] = {}
    units: dict[str, Counter[str]] = defaultdict(Counter)
    for prop in props.values():
        kind = prop.info["type"]
        row = by_type.setdefault(kind, {"all": 0, "mapped": 0, "ignored": 0})
        row["all"] += 1
        row["mapped" if prop.mapped else "ignored"] += 1
        name = prop.info.get("name") or prop.key
        unit = prop.info.get("unit")
        if prop.mapped:
            for target in sorted(prop.targets):
                units[f"{name} [{unit or '-'}] -> {target}"][prop.device["model"]] += 1
        else:
            group = unmapped.setdefault((name, kind, prop.info.get("parent") or ""),
                                        {"count": 0, "units": Counter(), "example": prop.device["model"]})
            group["count"] += 1
            group["units"][unit or "-"] += 1

    errors_by_kind: Counter[str] = Counter()
    error_example: dict[str, str] = {}
    for messages in error_lines.values():
        for message in messages:
            kind = _error_kind(message)
            errors_by_kind[kind] += 1
            error_example.setdefault(kind, message)
    # A note is once per model ("zigbee2mqtt <model>: not used: a, b"): grouped without the model.
    notes_by_kind: Counter[str] = Counter(re.sub(r"^zigbee2mqtt [^:']+: ", "", _error_kind(n["message"]))
                                          for n in result.notes)

    figures = {
        "zigbee_herdsman_converters": generator["version"],
        "definitions": generator["definitions"],
        "generator_errors": len(generator["generator_errors"]),
        "function_exposes": generator["function_exposes"],
        "devices": len(devices),
        "devices_in_replay": sum(1 for d in result.hub_devices if d.id in by_id),
        "devices_with_reading": len(reading_devices & set(by_id)),
        "properties": len(props),
        "properties_mapped": sum(p.mapped for p in props.values()),
        "by_type": dict(sorted(by_type.items())),
        "state_messages": sum(p.messages for p in props.values()),
        "state_messages_mapped": sum(p.mapped_messages for p in props.values()),
        "actions": actions_total,
        "action_values_distinct": len(action_values),
        "action_values_distinct_as_presses": len(pressed_values),
        "action_values_distinct_wrong_button": len({w["action"] for w in wrong}),
        "action_values_distinct_wrong_button_presses": len({w["action"] for w in wrong if w["press"]}),
        "actions_as_presses": actions_presses,
        "actions_as_presses_right_button": actions_right,
        "wrong_button": len(wrong),
        "errors": len(error_lines),
        "error_entries": len(result.errors),
        "error_kinds": len(errors_by_kind),
        "notes": len(result.notes),
        "phantom_capabilities": len(phantom_caps),
        "phantom_attributes": sum(phantom_attrs.values()),
        "mapped_units": sorted(units),
        # A property a rule would read but whose unit it does not take ("unit hp is not one power_meter
        # takes"): not used, said in a note. Each is a decision (convert it, give it its own attribute, or
        # leave it): a new one fails the ratchet until it is taken.
        "refused_units": sorted({m.group(1) for n in result.notes
                                 for m in re.finditer(r"([\w]+ \(unit [^)]* is not one \w+ takes\))",
                                                      n["message"])}),
    }
    details = {
        "unmapped": sorted(({"name": n, "type": t, "parent": p, "count": g["count"], "units": dict(g["units"]),
                             "example": g["example"]} for (n, t, p), g in unmapped.items()),
                           key=lambda r: (-r["count"], r["name"])),
        "units": {k: {"properties": sum(v.values()), "example": min(v)} for k, v in sorted(units.items())},
        "no_press": [{"action": a, "count": c, "example": no_press_models[a]} for a, c in no_press.most_common()],
        "wrong_button": wrong,
        "errors": [{"kind": k, "count": c, "example": error_example[k]} for k, c in errors_by_kind.most_common()],
        "notes": [{"kind": k, "count": c} for k, c in notes_by_kind.most_common()],
        "phantom": [{"capability": c, "count": n, "examples": phantom_models[c]}
                    for c, n in Counter(cap for _, _, cap in phantom_caps).most_common()],
        "phantom_attributes": dict(phantom_attrs.most_common()),
        "generator_errors": generator["generator_errors"],
    }
    return {"figures": figures, "details": details}


def measure(out_dir: Path | None = None, *, timing: bool = False) -> dict[str, Any]:
    """Generate (cached), replay, analyse; with ``timing`` also the plain replay's time and memory."""
    out_dir = out_dir or generate()
    capture = out_dir / "capture.jsonl"
    start = time.perf_counter()
    result, recorder = observed_replay(capture)
    report = analyse(out_dir, result, recorder)
    report["figures"]["observed_replay_seconds"] = round(time.perf_counter() - start, 2)
    if timing:
        report["figures"].update(timed_replay(capture))
    return report


# ------------------------------------------------------------------------------------------ ratchet

AT_LEAST = ("devices_with_reading", "properties_mapped", "actions_as_presses", "actions_as_presses_right_button")
AT_MOST = ("wrong_button", "errors", "phantom_capabilities", "generator_errors")


def ratchet_of(figures: dict[str, Any]) -> dict[str, Any]:
    """What baseline.json holds: the counts that may only grow, those that may only shrink, and every
    (property name, unit) -> capability.attribute mapping the codec made (a new one is to be reviewed)."""
    at_least = {k: figures[k] for k in AT_LEAST}
    at_least |= {f"mapped_{kind}": row["mapped"] for kind, row in figures["by_type"].items()}
    return {"zigbee_herdsman_converters": figures["zigbee_herdsman_converters"],
            "at_least": at_least, "at_most": {k: figures[k] for k in AT_MOST},
            "mapped_units": figures["mapped_units"], "refused_units": figures["refused_units"]}


def compare(figures: dict[str, Any], baseline: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(what got worse or is new and unreviewed, what got better) against the baseline."""
    now = ratchet_of(figures)
    worse: list[str] = []
    better: list[str] = []
    if baseline.get("zigbee_herdsman_converters") != now["zigbee_herdsman_converters"]:
        worse.append(f"baseline.json is for zigbee-herdsman-converters {baseline.get('zigbee_herdsman_converters')}, "
                     f"the lock pins {now['zigbee_herdsman_converters']}: a bump comes with a new baseline")
        return worse, better
    for key, value in now["at_least"].items():
        was = baseline["at_least"].get(key, 0)
        if value < was:
            worse.append(f"{key}: {value} < {was}")
        elif value > was:
            better.append(f"{key}: {was} -> {value}")
    for key, value in now["at_most"].items():
        was = baseline["at_most"].get(key)
        if was is not None and value > was:
            worse.append(f"{key}: {value} > {was}")
        elif was is not None and value < was:
            better.append(f"{key}: {was} -> {value}")
    known = set(baseline.get("mapped_units", []))
    new = [u for u in now["mapped_units"] if u not in known]
    if new:
        worse.append("new (property [unit] -> capability.attribute) mappings, not in the baseline; check each "
                     "converts its unit to the attribute's, then update the baseline:\n    " + "\n    ".join(new))
    decided = set(baseline.get("refused_units", []))
    undecided = [u for u in now["refused_units"] if u not in decided]
    if undecided:
        worse.append("units nobody handled (the property is not used; convert the unit in the codec's rule, give "
                     "it an attribute of its own, or record the refusal in the baseline):\n    "
                     + "\n    ".join(undecided))
    gone = [u for u in known if u not in set(now["mapped_units"])]
    if gone:
        better.append(f"{len(gone)} mappings no longer made: " + ", ".join(sorted(gone)[:10]))
    return worse, better


def write_baseline(figures: dict[str, Any], path: Path = BASELINE) -> None:
    path.write_text(json.dumps(ratchet_of(figures), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------ reports


def _pct(part: int, whole: int) -> str:
    return f"{part:,}/{whole:,} ({100 * part / whole:.1f} %)" if whole else f"{part}/{whole}"


def summary(figures: dict[str, Any]) -> str:
    """One screen: the figures the note quotes."""
    f = figures
    lines = [
        f"Zigbee2MQTT device database: zigbee-herdsman-converters {f['zigbee_herdsman_converters']}, "
        f"{f['definitions']:,} definitions ({f['function_exposes']} with function exposes, "
        f"{f['generator_errors']} not generated)",
        f"  devices with a reading      {_pct(f['devices_with_reading'], f['devices'])}",
        f"  properties mapped           {_pct(f['properties_mapped'], f['properties'])}"
        "  (readable, without linkquality)",
    ]
    for kind, row in f["by_type"].items():
        lines.append(f"    {kind:<10} mapped {row['mapped']:>6,}  ignored {row['ignored']:>6,}  of {row['all']:>6,}")
    lines += [
        f"  state messages with update  {_pct(f['state_messages_mapped'], f['state_messages'])}",
        f"  actions read as presses     {_pct(f['actions_as_presses'], f['actions'])}; with the right button "
        f"{f['actions_as_presses_right_button']:,}",
        f"    distinct action values    {_pct(f['action_values_distinct_as_presses'], f['action_values_distinct'])}"
        f" read as presses; on a wrong button {f['action_values_distinct_wrong_button']:,} "
        f"({f['action_values_distinct_wrong_button_presses']:,} of them presses)",
        f"  wrong button                {f['wrong_button']:,} action messages (an event whose button is not "
        "the value's number)",
        f"  errors                      {f['errors']:,} messages ({f['error_entries']:,} entries, "
        f"{f['error_kinds']} kinds); notes {f['notes']:,}",
        f"  phantom capabilities        {f['phantom_capabilities']:,} "
        f"(attributes never valued: {f['phantom_attributes']:,})",
        f"  (property [unit] -> attribute) mappings  {len(f['mapped_units'])}",
    ]
    if "replay_seconds" in f:
        lines.append(f"  replay                      {f['replay_seconds']} s, peak RSS {f['peak_rss_mb']} MB "
                     f"({f['rss_before_replay_mb']} MB before the replay)")
    if "observed_replay_seconds" in f:
        lines.append(f"  observed replay + analysis  {f['observed_replay_seconds']} s")
    return "\n".join(lines)


def lists(details: dict[str, Any], top: int = 40) -> str:
    out: list[str] = []

    def block(title: str, rows: list[str], total: int) -> None:
        out.append("")
        out.append(f"{title} ({total:,})")
        out.extend(f"  {row}" for row in rows[:top])
        if total > top:
            out.append(f"  … {total - top:,} more")

    unmapped = details["unmapped"]
    block("unmapped properties by name (count  name  type  parent  units  example)", [
        f"{r['count']:>5}  {r['name']:<34} {r['type']:<9} {r['parent'] or '-':<8} "
        f"{','.join(f'{u}:{n}' for u, n in sorted(r['units'].items(), key=lambda i: -i[1]))}  ({r['example']})"
        for r in unmapped], len(unmapped))
    units = details["units"]
    block("units per mapped property (properties  name [unit] -> capability.attribute)",
          [f"{v['properties']:>5}  {k}  ({v['example']})" for k, v in units.items()], len(units))
    no_press = details["no_press"]
    block("action values not read as presses (count  value  example)",
          [f"{r['count']:>5}  {r['action']:<36} ({r['example']})" for r in no_press], len(no_press))
    wrong = Counter((w["action"], tuple(w["expected"]), tuple(w["got"])) for w in details["wrong_button"])
    block("wrong button (count  value  expected  got)",
          [f"{c:>5}  {a:<36} {list(e)} -> {list(g)}" for (a, e, g), c in wrong.most_common()], len(wrong))
    errors = details["errors"]
    block("errors grouped (count  kind)", [f"{r['count']:>5}  {r['kind'][:160]}" for r in errors], len(errors))
    notes = details["notes"]
    if notes:
        block("notes grouped (count  kind)", [f"{r['count']:>5}  {r['kind'][:160]}" for r in notes], len(notes))
    phantom = details["phantom"]
    block("phantom capabilities (count  capability  examples)",
          [f"{r['count']:>5}  {r['capability']:<20} {', '.join(r['examples'])}" for r in phantom], len(phantom))
    if details["generator_errors"]:
        block("definitions the generator could not expose",
              [f"{e['vendor']} {e['model']}: {e['error']}" for e in details["generator_errors"]],
              len(details["generator_errors"]))
    return "\n".join(out)


def save(report: dict[str, Any]) -> Path:
    """Write the figures (for the note) and the one-screen summary into ``out/``; returns the figures' path."""
    OUT.mkdir(exist_ok=True)
    FIGURES.write_text(json.dumps(report["figures"], indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (OUT / "summary.txt").write_text(summary(report["figures"]) + "\n" + lists(report["details"]) + "\n",
                                     encoding="utf-8")
    return FIGURES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.z2mdb.measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=40, help="entries per list (default 40)")
    parser.add_argument("--json", action="store_true", help="figures and lists as JSON")
    parser.add_argument("--timing", action="store_true", help="also time the plain replay in a subprocess")
    parser.add_argument("--update-baseline", action="store_true", help=f"rewrite {BASELINE.name}")
    parser.add_argument("--timing-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.timing_child:
        _timing_child(args.timing_child)
        return 0
    try:
        report = measure(timing=args.timing)
    except RuntimeError as error:
        print(f"z2mdb: {error}", file=sys.stderr)
        return 2
    figures = report["figures"]
    save(report)
    if args.json:
        print(json.dumps(report, indent=1, ensure_ascii=False))
    else:
        print(summary(figures))
        print(lists(report["details"], args.top))
        if BASELINE.is_file():
            worse, better = compare(figures, json.loads(BASELINE.read_text(encoding="utf-8")))
            print("\nagainst baseline.json: " + ("no change" if not (worse or better) else ""))
            for line in worse:
                print(f"  WORSE  {line}")
            for line in better:
                print(f"  better {line}")
    if args.update_baseline or os.environ.get(UPDATE_ENV) == "1":
        write_baseline(figures)
        print(f"wrote {BASELINE.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
