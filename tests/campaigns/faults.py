"""Fault campaigns against a real ``hearth run`` process, a real Mosquitto and a real SQLite file.

- :func:`broker_restarts`: the broker is restarted under the gateway, round after round. Each round a
  command is sent while the broker is down (it must be refused and never carried out later), one is sent
  as the broker goes away (whatever it is answered, it must not arrive after the restart unless it was
  confirmed), and one after the restart (it must be confirmed, and the device must have it). The bridge's
  retained state survives the restarts (Mosquitto with persistence): the gateway's state after each restart
  is the last confirmed one.
- :func:`kill9_mid_commit`: a stream of state changes, ``kill -9`` at a random instant, again and again on
  one database: ``PRAGMA integrity_check`` is ok every time, the gateway starts again on it, and the newest
  stored state is at most about one commit interval older than the kill.
- :func:`disk_full`: the gateway's file size limit (``RLIMIT_FSIZE``, set on the running process with
  ``prlimit``) is lowered to what its files already take, so SQLite cannot grow them: commits fail, the
  gateway keeps running and keeps the changes; the limit is lifted and every change of the full period
  is written.

Each returns its figures as a dict and prints them; nothing here asserts (the tests and the CLI do).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from gateway.devkit.mosquitto import Mosquitto, free_port
from tests.gateway_process import Api, FakeZigbee2Mqtt, GatewayProcess, wait_until

PLUG = "zigbee2mqtt:0x00158d0001db18f9"  # Xiaomi ZNCZ02LM, friendly name "Plug" (tests/fixtures/z2m)
LIGHT = "zigbee2mqtt:0x00158d0002b7d6be"  # Aqara bulb, "Bedroom Desk Light"
LIGHT_NAME = "Bedroom Desk Light"

Out = Callable[[str], None]


def write_config(path: Path, broker_port: int, db: Path, commit_interval_s: float, *, api_port: int | None = None,
                 command_timeout_s: float = 3.0) -> Path:
    path.write_text(
        f'[gateway]\nlog_level = "warning"\n\n'
        f'[mqtt]\nport = {broker_port}\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n\n'
        f'[store]\npath = "{db}"\ncommit_interval_s = {commit_interval_s}\n\n'
        f'[api]\nport = {api_port or free_port()}\ncommand_timeout_s = {command_timeout_s}\n\n'
        '[adapters.ble]\nenabled = false\n\n[mdns]\nenabled = false\n\n[areas]\n"Plug" = "kitchen"\n',
        encoding="utf-8")
    return path


def _api_port(path: Path) -> int:
    text = path.read_text()
    api = text[text.index("[api]"):]
    return int(api.split("port = ", 1)[1].split("\n", 1)[0])


class RetainingBridge(FakeZigbee2Mqtt):
    """The fake bridge, answering a /set with the device's new state *retained* (as Zigbee2MQTT does with
    ``retain: true``), subscribed at QoS 1, and announcing itself again after every reconnect."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[float, str, dict[str, Any], int]] = []  # (monotonic, name, payload, qos)
        self.connects = 0
        self.devices: list[dict[str, Any]] | None = None
        super().__init__(port)
        self.client.on_connect = self._on_connect

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connects += 1
        client.subscribe("zigbee2mqtt/+/set", qos=1)
        if self.devices is not None:  # Zigbee2MQTT publishes bridge/devices (retained) on every connect
            client.publish("zigbee2mqtt/bridge/state", '{"state":"online"}', qos=1, retain=True)
            client.publish("zigbee2mqtt/bridge/devices", json.dumps(self.devices), qos=1, retain=True)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        name = message.topic[len("zigbee2mqtt/"):-len("/set")]
        payload = json.loads(message.payload)
        self.received.append((time.monotonic(), name, payload, message.qos))
        self.sets.put((name, payload))
        if self.answer:
            client.publish(f"zigbee2mqtt/{name}", json.dumps(payload), qos=1, retain=True)

    def announce(self, devices: list[dict[str, Any]] | None = None) -> None:
        from tests.gateway_process import FIXTURES

        self.devices = devices or json.loads((FIXTURES / "bridge_devices.json").read_text())
        super().announce(self.devices)


def _health(api: Api) -> dict[str, Any]:
    _status, body = api.call("GET", "/healthz")
    return body if isinstance(body, dict) else {}


def _brightness(percent: int) -> int:
    return round(percent * 254 / 100)


def broker_restarts(workdir: Path, rounds: int, *, time_budget_s: float = 600.0, out: Out = print) -> dict[str, Any]:
    """Restart the broker ``rounds`` times under a running gateway with commands around each restart."""
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(workdir / "mosquitto", extra_config=[
        "persistence true", f"persistence_location {workdir / 'mosquitto'}/", "autosave_interval 1"])
    broker.start()
    config = write_config(workdir / "house.toml", broker.port, workdir / "hearth.db", 0.5, command_timeout_s=3.0)
    gateway = GatewayProcess(config, workdir / "data")
    bridge: RetainingBridge | None = None
    figures: dict[str, Any] = {"rounds": 0, "confirmed": 0, "lost_confirmed": 0, "refused_while_down": 0,
                               "stale_delivered": 0, "in_flight": {}, "late_in_flight": 0, "state_regressions": 0,
                               "duplicates": 0, "command_qos": set(), "reconnect_s_max": 0.0, "problems": []}
    started = time.monotonic()
    try:
        gateway.start()
        assert gateway.token
        api = Api(_api_port(config), gateway.token)
        bridge = RetainingBridge(broker.port)
        bridge.announce()
        wait_until(lambda: api.device(LIGHT), what="the light in the API")
        last_confirmed: int | None = None
        for round_index in range(rounds):
            if time.monotonic() - started > time_budget_s:
                figures["problems"].append(f"time budget of {time_budget_s:.0f} s reached after {round_index} rounds")
                break
            # Percent values 1..100 cycle; each cycle of 3 uses distinct values, and a value is checked
            # only against the commands of its own round (the received list is cut at each round).
            base = (round_index * 3) % 99
            p_inflight, p_down, p_up = base + 1, base + 2, base + 3
            mark = len(bridge.received)

            # 1. A command as the broker goes away: sent on a thread, the broker stopped at once.
            answer: queue.Queue[tuple[int, Any]] = queue.Queue()
            threading.Thread(target=lambda p=p_inflight, answer=answer: answer.put(api.call(
                "POST", f"/api/devices/{LIGHT}/commands",
                {"capability": "level", "command": "set", "args": {"percent": p}})), daemon=True).start()
            time.sleep(random.uniform(0.0, 0.006))
            broker.stop()
            inflight_status, _ = answer.get(timeout=20)
            figures["in_flight"][inflight_status] = figures["in_flight"].get(inflight_status, 0) + 1
            if inflight_status == 200:
                last_confirmed = _brightness(p_inflight)

            # 2. While the broker is down: refused.
            wait_until(lambda: _health(api).get("mqtt", {}).get("connected") is False, timeout_s=10,
                       what="the gateway to notice the broker is gone")
            status, result = api.call("POST", f"/api/devices/{LIGHT}/commands",
                                      {"capability": "level", "command": "set", "args": {"percent": p_down}})
            if status == 503:
                figures["refused_while_down"] += 1
            else:
                figures["problems"].append(f"round {round_index}: a command while the broker was down got "
                                           f"{status} {result!r}")

            # 3. Back up: the gateway reconnects, the bridge announces itself again (retained state survives).
            down_at = time.monotonic()
            broker.start()
            wait_until(lambda: _health(api).get("mqtt", {}).get("connected") is True, timeout_s=20,
                       what="the gateway to reconnect")
            wait_until(bridge.client.is_connected, timeout_s=10, what="the bridge to reconnect")
            figures["reconnect_s_max"] = max(figures["reconnect_s_max"], time.monotonic() - down_at)
            # After the restart the light's state is still the last one the device reported (the retained
            # message comes again): the last confirmed command's, or the in-flight one's if the device got it.
            time.sleep(0.3)
            reported = {b for _, name, payload, _ in bridge.received[mark:] if name == LIGHT_NAME
                        for b in [payload.get("brightness")] if b == _brightness(p_inflight)}
            allowed = reported | ({last_confirmed} if last_confirmed is not None else set())
            state = (api.device(LIGHT) or {}).get("components", {}).get("main", {}).get("level", {})
            if allowed and not any(abs(state.get("percent", -99) - b * 100 / 254) <= 1 for b in allowed):
                figures["state_regressions"] += 1
                figures["problems"].append(f"round {round_index}: the light's level is {state.get('percent')} after "
                                           f"the restart, the device last reported brightness {sorted(allowed)}")
            status, result = 0, None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the adapter may be a moment behind the session
                status, result = api.call("POST", f"/api/devices/{LIGHT}/commands",
                                          {"capability": "level", "command": "set", "args": {"percent": p_up}})
                if status != 503:
                    break
                time.sleep(0.1)
            if status == 200 and isinstance(result, dict) and result.get("status") == "confirmed":
                figures["confirmed"] += 1
                last_confirmed = _brightness(p_up)
            else:
                figures["problems"].append(f"round {round_index}: the command after the restart got {status} "
                                           f"{result!r}")
            time.sleep(0.2)  # a late or re-sent command would arrive now
            got = [(t, payload.get("brightness"), qos) for t, name, payload, qos in bridge.received[mark:]
                   if name == LIGHT_NAME]
            values = [b for _, b, _ in got]
            figures["command_qos"].update(q for _, _, q in got)
            up_confirmed = status == 200 and isinstance(result, dict) and result.get("status") == "confirmed"
            for value, was_confirmed in ((_brightness(p_inflight), inflight_status == 200),
                                         (_brightness(p_up), up_confirmed)):
                if was_confirmed and value not in values:
                    figures["lost_confirmed"] += 1
                    figures["problems"].append(f"round {round_index}: confirmed brightness {value} never "
                                               "reached the device")
            if _brightness(p_down) in values:
                figures["stale_delivered"] += 1
                figures["problems"].append(f"round {round_index}: a command refused while the broker was down "
                                           f"(brightness {_brightness(p_down)}) reached the device later")
            inflight_times = [t for t, b, _ in got if b == _brightness(p_inflight)]
            if inflight_status != 200 and any(t > down_at for t in inflight_times):
                figures["late_in_flight"] += 1
                figures["problems"].append(f"round {round_index}: a command answered {inflight_status} as the "
                                           "broker went away reached the device after the restart")
            figures["duplicates"] += sum(values.count(v) - 1 for v in set(values) if values.count(v) > 1)
            figures["rounds"] += 1
        figures["gateway_alive"] = gateway.proc is not None and gateway.proc.poll() is None
    finally:
        if bridge is not None:
            bridge.close()
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.stop()
        broker.stop()
    figures["command_qos"] = sorted(figures["command_qos"])
    figures["seconds"] = round(time.monotonic() - started, 1)
    out(f"broker-restarts: {figures['rounds']} restarts in {figures['seconds']} s; confirmed "
        f"{figures['confirmed']}, lost confirmed {figures['lost_confirmed']}, refused while down "
        f"{figures['refused_while_down']}, stale delivered {figures['stale_delivered']}, in-flight answers "
        f"{figures['in_flight']}, late in-flight {figures['late_in_flight']}, duplicates {figures['duplicates']}, "
        f"state regressions {figures['state_regressions']}, command QoS seen {figures['command_qos']}, "
        f"reconnect max {figures['reconnect_s_max']:.2f} s")
    for problem in figures["problems"][:20]:
        out(f"  {problem}")
    return figures


# ---------------------------------------------------------------------------------------------- kill -9


class _Publisher:
    """Publishes the plug's power as a counter (1, 2, 3, …) at a steady rate and remembers when each went;
    with ``load``, each tick also sends messages of ``load`` (topic, payload) in turn (other devices' states),
    so that a commit has more to write."""

    def __init__(self, port: int, rate_hz: float, load: list[tuple[str, bytes]] | None = None,
                 load_per_tick: int = 0) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"campaign-pub-{os.getpid()}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.rate_hz = rate_hz
        self.load = load or []
        self.load_per_tick = load_per_tick if self.load else 0
        self._load_index = 0
        self.sent_at: dict[int, float] = {}
        self.counter = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="campaign-publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = 1.0 / self.rate_hz
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.counter += 1
            self.sent_at[self.counter] = time.monotonic()
            self.client.publish("zigbee2mqtt/Plug", json.dumps({"power": float(self.counter), "state": "ON"}), qos=0)
            for _ in range(self.load_per_tick):
                topic, payload = self.load[self._load_index % len(self.load)]
                self._load_index += 1
                self.client.publish(topic, payload, qos=0)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def close(self) -> None:
        self.stop()
        self.client.loop_stop()
        self.client.disconnect()


def _stored_power(db: Path) -> tuple[str, float | None, int]:
    """(integrity_check result, the plug's stored power, history changes of the plug)."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        row = connection.execute("SELECT value FROM state WHERE device_id = ? AND capability = 'power_meter' "
                                 "AND attribute = 'watts'", (PLUG,)).fetchone()
        history = connection.execute("SELECT coalesce(sum(changes), 0) FROM history_block WHERE device_id = ?",
                                     (PLUG,)).fetchone()[0]
    return integrity, (float(json.loads(row[0])) if row else None), int(history)


def _wal_changed(wal: Path, timeout_s: float) -> bool:
    """Wait until the WAL file changes (a commit is being written): True, or False after ``timeout_s``."""
    def signature() -> tuple[int, int]:
        try:
            stat = wal.stat()
        except FileNotFoundError:
            return (-1, -1)
        return (stat.st_size, stat.st_mtime_ns)

    before = signature()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if signature() != before:
            return True
        time.sleep(0.0002)  # polls at ~5 kHz: the kill lands within a fraction of a millisecond of the write
    return False


def kill9_mid_commit(workdir: Path, rounds: int, *, commit_interval_s: float = 0.5, rate_hz: float = 100.0,
                     load_devices: int = 300, load_per_tick: int = 10, time_budget_s: float = 600.0,
                     out: Out = print) -> dict[str, Any]:
    """``kill -9`` the gateway ``rounds`` times under a stream of state changes (the plug's counter, and
    ``load_per_tick`` changes of ``load_devices`` more devices per tick): every other round at the moment
    the WAL starts to change (a commit is being written), the others at a random instant."""
    from gateway.sim import message_stream, scaled_house
    from tests.gateway_process import FIXTURES

    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    db = workdir / "hearth.db"
    config = write_config(workdir / "house.toml", broker.port, db, commit_interval_s)
    figures: dict[str, Any] = {"rounds": 0, "corrupt": 0, "failed_restarts": 0, "losses_s": [], "ages_s": [],
                               "commit_warnings": [],
                               "max_loss_s": 0.0, "commit_interval_s": commit_interval_s, "kills_on_wal_write": 0,
                               "changes_per_s": rate_hz * (1 + (load_per_tick if load_devices else 0)),
                               "problems": []}
    house = scaled_house(load_devices) if load_devices else None
    load = list(message_stream(house, 20 * load_devices)) if house is not None else []
    publisher = _Publisher(broker.port, rate_hz, load, load_per_tick)
    bridge = FakeZigbee2Mqtt(broker.port)
    devices = json.loads((FIXTURES / "bridge_devices.json").read_text())
    bridge.announce(devices + (house.bridge_devices() if house is not None else []))
    started = time.monotonic()
    rng = random.Random(os.getpid())
    token: str | None = None
    try:
        for round_index in range(rounds):
            if time.monotonic() - started > time_budget_s:
                figures["problems"].append(f"time budget of {time_budget_s:.0f} s reached after {round_index} rounds")
                break
            gateway = GatewayProcess(config, workdir / "data")
            try:
                gateway.start()
            except AssertionError as err:
                figures["failed_restarts"] += 1
                figures["problems"].append(f"round {round_index}: the gateway did not start on the database: "
                                           f"{str(err)[-800:]}")
                break
            token = gateway.token or token  # printed at the first start only
            assert token, "the first start prints the API token"
            api = Api(_api_port(config), token)
            publisher.start()
            # Past the first commit of this run, then a random instant within the next few intervals, or the
            # moment the next commit starts writing.
            time.sleep(commit_interval_s * 2 + rng.uniform(0, commit_interval_s * 3))
            if round_index % 2 and _wal_changed(Path(f"{db}-wal"), commit_interval_s * 3):
                figures["kills_on_wal_write"] += 1
            # What the gateway holds right before the kill (a few ms before it): the state it had and lost
            # is what it held less what was stored. (How old the stored state is at the kill also counts the
            # messages still queued on their way in, which a loaded machine makes long: reported apart.)
            asked_at = time.monotonic()
            status, plug = api.call("GET", f"/api/devices/{PLUG}")
            held = plug["components"]["main"].get("power_meter", {}).get("watts") if status == 200 else None
            killed_at = time.monotonic()
            gateway.kill9()
            publisher.stop()
            integrity, power, _ = _stored_power(db)
            if integrity != "ok":
                figures["corrupt"] += 1
                figures["problems"].append(f"round {round_index}: integrity_check says {integrity!r}")
                break
            if power is None or held is None:
                figures["problems"].append(f"round {round_index}: no stored power ({power}) or none held ({held})")
                continue
            sent = publisher.sent_at.get(int(power))
            sent_held = publisher.sent_at.get(int(held))
            if sent is None or sent_held is None:
                figures["problems"].append(f"round {round_index}: stored {power} / held {held} were never sent")
                figures["losses_s"].append(float("nan"))
                continue
            loss = max(0.0, sent_held - sent) + (killed_at - asked_at)
            # The gateway warns of a commit slower than the interval, and of a failed one: why a loss was long.
            slow = [line.strip() for line in gateway.log_text().splitlines() if "commit" in line]
            if slow:
                figures["commit_warnings"].append((round_index, round(loss, 3), slow[-3:]))
            figures["losses_s"].append(round(loss, 3))
            figures["max_loss_s"] = max(figures["max_loss_s"], loss)
            figures["ages_s"].append(round(killed_at - sent, 3))
            figures["rounds"] += 1
        # The last database must open in a fresh gateway, with the stored state.
        final = GatewayProcess(config, workdir / "data")
        try:
            final.start()
            figures["restarts_ok"] = True
            final.stop()
        except AssertionError as err:
            figures["restarts_ok"] = False
            figures["failed_restarts"] += 1
            figures["problems"].append(f"the final start failed: {str(err)[-800:]}")
    finally:
        publisher.close()
        bridge.close()
        broker.stop()
    losses = sorted(x for x in figures["losses_s"] if x == x)
    figures["median_loss_s"] = losses[len(losses) // 2] if losses else None
    ages = sorted(figures["ages_s"])
    figures["max_age_s"] = ages[-1] if ages else None
    figures["median_age_s"] = ages[len(ages) // 2] if ages else None
    figures["seconds"] = round(time.monotonic() - started, 1)
    out(f"kill9: {figures['rounds']} kills in {figures['seconds']} s ({figures['kills_on_wal_write']} as a commit "
        f"was being written), {figures['changes_per_s']:g} changes/s, commit interval {commit_interval_s} s: "
        f"{figures['corrupt']} corrupt databases, {figures['failed_restarts']} failed restarts; state held but lost: "
        f"max {figures['max_loss_s']:.3f} s of changes, median {figures['median_loss_s']} s; newest stored state at "
        f"the kill: max {figures['max_age_s']} s old, median {figures['median_age_s']} s; largest losses "
        f"{losses[-5:][::-1]} s")
    for problem in figures["problems"][:20]:
        out(f"  {problem}")
    for round_index, loss, lines in figures["commit_warnings"][:10]:
        out(f"  round {round_index} (loss {loss} s), the gateway said: {' | '.join(lines)}")
    return figures


# ---------------------------------------------------------------------------------------------- disk full


def _file_sizes(paths: list[Path]) -> int:
    return max((p.stat().st_size for p in paths if p.exists()), default=0)


def tmpfs_available() -> bool:
    """A small tmpfs can be mounted in a private mount namespace here (root, or a user namespace with mounts)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\" && umount \"$d\"; "
                            "s=$?; rmdir \"$d\"; exit $s"], capture_output=True, timeout=10)
    return probe.returncode == 0


class _GatewayOnTmpfs(GatewayProcess):
    """``hearth run`` in a private mount namespace with a tmpfs of ``size_kib`` on ``mount_dir`` (the store's
    directory), seen from here as /proc/<pid>/root/<mount_dir>. The namespace and the tmpfs end with it."""

    def __init__(self, config: Path, data_dir: Path, mount_dir: Path, size_kib: int) -> None:
        super().__init__(config, data_dir)
        self.mount_dir = mount_dir
        self.size_kib = size_kib

    def start(self) -> None:
        hearth = Path(sys.executable).parent / "hearth"
        env = dict(os.environ, HEARTH_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1")
        # unshare and sh exec: the process is hearth itself (its pid is ours to signal).
        script = f'mount -t tmpfs -o size={self.size_kib}k,mode=0700 tmpfs "{self.mount_dir}" && exec "$0" "$@"'
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(hearth), "run", "--config",
             str(self.config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        self.wait_for_line(r"ready: API at", timeout_s=30)

    def inside(self, path: Path) -> Path:
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/root{path}")


def _fill(path: Path) -> int:
    """Write ``path`` until the file system is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * 4096
    with path.open("wb", buffering=0) as file:
        for _ in range(1_000_000):  # bounded: a tmpfs of a few MiB fills in a few hundred chunks
            try:
                written += file.write(chunk) or 0
            except OSError as err:
                if err.errno in (errno.ENOSPC, errno.EFBIG):
                    break
                raise
    return written


def _stored_changes(db: Path) -> set[float]:
    stored: set[float] = set()
    with contextlib.closing(sqlite3.connect(db)) as connection:
        for (text,) in connection.execute("SELECT rows FROM history_block WHERE device_id = ?", (PLUG,)):
            items = json.loads(text)
            stored.update(float(items[i + 4]) for i in range(0, len(items), 5)
                          if items[i + 2] == "power_meter" and items[i + 3] == "watts")
    return stored


def disk_full(workdir: Path, *, full_seconds: float = 3.0, commit_interval_s: float = 0.3, rate_hz: float = 100.0,
              method: str = "auto", out: Out = print) -> dict[str, Any]:
    """Make the store unable to grow for ``full_seconds`` under a stream of changes, then let it.

    ``method``: "tmpfs" (a real full file system: a 4 MiB tmpfs in a private mount namespace, filled up with a
    file that is deleted to give the space back; needs the right to mount), "rlimit" (``RLIMIT_FSIZE`` lowered
    on the running gateway to the size of its largest file, then lifted: works anywhere), or "auto" (tmpfs
    where it can be mounted)."""
    if method == "auto":
        method = "tmpfs" if tmpfs_available() else "rlimit"
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    mount_dir = workdir / "store"
    mount_dir.mkdir(exist_ok=True)
    db = mount_dir / "hearth.db"
    config = write_config(workdir / "house.toml", broker.port, db, commit_interval_s)
    figures: dict[str, Any] = {"method": method, "problems": []}
    on_tmpfs = method == "tmpfs"
    gateway: GatewayProcess = (_GatewayOnTmpfs(config, workdir / "data", mount_dir, 4096) if on_tmpfs
                               else GatewayProcess(config, workdir / "data"))
    publisher = _Publisher(broker.port, rate_hz)
    bridge = FakeZigbee2Mqtt(broker.port)
    started = time.monotonic()
    try:
        gateway.start()
        assert gateway.proc is not None and gateway.token
        seen_db = gateway.inside(db) if isinstance(gateway, _GatewayOnTmpfs) else db
        api = Api(_api_port(config), gateway.token)
        bridge.announce()
        wait_until(lambda: api.device(PLUG), what="the plug")
        time.sleep(commit_interval_s * 3)
        filler = seen_db.with_name("filler")
        if on_tmpfs:
            figures["filled_bytes"] = _fill(filler)
        else:
            # No file of the gateway may grow past its largest file now: the WAL is at its size, so the next
            # commits that need more room fail as on a full disk (EFBIG; Python ignores SIGXFSZ).
            limit = _file_sizes([db, Path(f"{db}-wal"), Path(f"{db}-shm")])
            resource.prlimit(gateway.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        store_before = _health(api).get("store") or {}
        first_full = publisher.counter + 1
        publisher.start()
        time.sleep(full_seconds)
        publisher.stop()
        last_full = publisher.counter
        store_full = _health(api).get("store") or {}
        figures["commit_failures_while_full"] = store_full.get("commit_failures", 0) - store_before.get(
            "commit_failures", 0)
        figures["pending_while_full"] = store_full.get("pending")
        figures["api_while_full"] = api.call("GET", f"/api/devices/{PLUG}")[0]
        figures["alive_while_full"] = gateway.proc.poll() is None
        # Space again.
        if on_tmpfs:
            filler.unlink()
        else:
            resource.prlimit(gateway.proc.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        back_at = time.monotonic()
        wait_until(lambda: (_health(api).get("store") or {}).get("pending") == 0
                   and (_health(api).get("store") or {}).get("commits", 0) > store_full.get("commits", 0),
                   timeout_s=20, what="a commit after space came back")
        figures["recovered_after_s"] = round(time.monotonic() - back_at, 2)
        # What a user sees: the history of the full period through the API (the last 24 hours by default).
        status, body = api.call("GET", f"/api/history?device={PLUG}&capability=power_meter&attribute=watts"
                                       f"&limit={min(20_000, max(1000, 2 * (last_full - first_full + 1)))}")
        rows = body.get("rows", []) if isinstance(body, dict) else []
        seen = {float(r["value"]) for r in rows if isinstance(r, dict) and r.get("attribute") == "watts"}
        wanted = set(map(float, range(first_full, last_full + 1)))
        figures["changes_while_full"] = len(wanted)
        figures["history_status"] = status
        figures["lost_in_api_history"] = len(wanted - seen)
        # The file itself. The tmpfs goes with the process, and SQLite resolves /proc/<pid>/root to this
        # namespace's root: a copy of the database and its WAL, taken while nothing is pending (no commit runs).
        copy = workdir / "copy" / "hearth.db"
        copy.parent.mkdir(exist_ok=True)
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(f"{seen_db}{suffix}", f"{copy}{suffix}")
        figures["lost_changes"] = len(wanted - _stored_changes(copy))
        integrity, power, _ = _stored_power(copy)
        figures["integrity"] = integrity
        figures["stored_power"] = power
        figures["last_sent"] = float(last_full)
        figures["exit_code"] = gateway.stop()
    finally:
        publisher.close()
        bridge.close()
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.stop()
        broker.stop()
    figures["seconds"] = round(time.monotonic() - started, 1)
    out(f"disk-full ({figures['method']}): {figures.get('changes_while_full')} changes while full for "
        f"{full_seconds} s, {figures.get('commit_failures_while_full')} failed commits, gateway alive "
        f"{figures.get('alive_while_full')}, API {figures.get('api_while_full')}; space back: written after "
        f"{figures.get('recovered_after_s')} s, {figures.get('lost_changes')} changes lost (in the API's history: "
        f"{figures.get('lost_in_api_history')}), integrity {figures.get('integrity')}, stored power "
        f"{figures.get('stored_power')} (last sent {figures.get('last_sent')}), exit {figures.get('exit_code')}")
    for problem in figures["problems"]:
        out(f"  {problem}")
    return figures
