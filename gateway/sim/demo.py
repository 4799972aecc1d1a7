"""``hearth demo``: the gateway on its embedded broker, the simulated house and its resident, in
accelerated time, both shipped profiles active; prints the web UI's address, the owner account's
random password and a login token.

The data directory (default ``./hearth-demo-data``) is kept between runs, so the password and the login
token stay valid (they are kept there in plain text, ``demo-password`` and ``demo-token``, 0600: a demo
is loopback-only and has nothing to protect). The database is started afresh on every run: the
simulated clock starts again at ``--start``, and history, scene timers and alerts written at later
simulated times by a previous run would not make sense on the new timeline.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import os
import time as _time
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config import Config
from gateway.errors import HearthError
from gateway.sim.house import House, demo_house
from gateway.sim.resident import visit_weekday

__all__ = ["DemoOptions", "demo_config", "local_zone_name", "run_demo", "start_epoch"]

DEMO_DB = "demo.db"
TOKEN_FILE = "demo-token"
PASSWORD_FILE = "demo-password"
DEMO_OWNER = "owner"
# Scenes and the store count in simulated seconds. A few limits are about real time (a command's
# round trip, an SD card's commits): they are scaled with the speed so that they stay sensible.
_REAL_COMMAND_TIMEOUT_S = 2.0
_REAL_COMMIT_INTERVAL_S = 5.0


@dataclass(frozen=True)
class DemoOptions:
    speed: float = 60.0
    port: int = 8470
    data_dir: Path = Path("hearth-demo-data")
    seed: int = 1
    start: str = "06:30"  # local time of day the simulation starts at (today, or yesterday if still ahead)
    bad_morning_day: int | None = 1  # 0 = the first simulated day; None: never
    mqtt_port: int = 0  # 0: any free port (printed)
    log_level: str = "warning"


def local_zone_name() -> str:
    """The machine's IANA time zone name (TZ, then /etc/localtime), or UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            candidates.append(link.split("zoneinfo/", 1)[1])
    for name in candidates:
        if not name:
            continue
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return "UTC"


def start_epoch(clock_time: str, tz: ZoneInfo, now: float | None = None) -> float:
    """Today at ``clock_time`` (HH:MM, local), or yesterday if that is still ahead."""
    now = _time.time() if now is None else now
    hours, minutes = (int(p) for p in clock_time.split(":"))
    today = datetime.fromtimestamp(now, tz).date()
    start = datetime.combine(today, dtime(hours, minutes), tz)
    if start.timestamp() > now:
        start = datetime.combine(today - timedelta(days=1), dtime(hours, minutes), tz)
    return start.timestamp()


def demo_config(house: House, options: DemoOptions, timezone: str) -> Config:
    speed = options.speed
    data_dir = options.data_dir.resolve()
    return Config.model_validate({
        "gateway": {"data_dir": str(data_dir), "log_level": options.log_level},
        "mqtt": {"mode": "embedded", "port": options.mqtt_port, "reconnect_min_s": 0.1 * speed,
                 "reconnect_max_s": min(600.0, 5.0 * speed), "client_id": f"hearth-demo-{os.getpid()}"},
        "store": {"path": str(data_dir / DEMO_DB),
                  "commit_interval_s": min(3600.0, _REAL_COMMIT_INTERVAL_S * speed)},
        "api": {"port": options.port, "command_timeout_s": min(120.0, _REAL_COMMAND_TIMEOUT_S * speed)},
        "scenes": {"command_timeout_s": min(120.0, _REAL_COMMAND_TIMEOUT_S * speed)},
        "location": {"timezone": timezone},
        "notify": {"family": {"kind": "log"}, "neighbour": {"kind": "log"}},
        "profiles": [
            {"use": "elderly-monitoring", "params": {"contacts": ["family", "neighbour"]}},
            {"use": "energy-saving"},
        ],
        "areas": house.areas(),
        "tags": house.tags(),
        # No radio and no multicast in the demo: the BLE thermometers arrive through the BLE-to-MQTT
        # gateway path (ble_mqtt), and nothing announces or browses mDNS.
        "mdns": {"enabled": False},
        "adapters": {"ble": {"enabled": False}, "mdns": {"enabled": False}},
    }).model_copy(update={"source": "<hearth demo>"})


def demo_token(token_file: Path, plain_file: Path) -> str:
    """The demo's login token: the one kept from an earlier run if it still works, else a new one."""
    from gateway.api.auth import TokenStore

    tokens = TokenStore(token_file)
    with contextlib.suppress(OSError):
        kept = plain_file.read_text(encoding="utf-8").strip()
        if kept and tokens.verify(kept) is not None:
            return kept
    token, _info = tokens.create("demo")
    fd = os.open(plain_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token


def demo_owner(users_file: Path, plain_file: Path) -> tuple[str, str]:
    """The demo's owner account and its password: kept from an earlier run if it still works, else a new
    random one (never a default password: the demo's port may be reachable from the LAN)."""
    import secrets

    from gateway.api.accounts import OWNER, UserStore

    users = UserStore(users_file)
    with contextlib.suppress(OSError):
        kept = plain_file.read_text(encoding="utf-8").strip()
        if kept and users.verify_password(DEMO_OWNER, kept) is not None:
            return DEMO_OWNER, kept
    password = secrets.token_urlsafe(12)
    if users.get(DEMO_OWNER) is None:
        users.add(DEMO_OWNER, OWNER, password)
    else:
        users.set_password(DEMO_OWNER, password)
    fd = os.open(plain_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(password + "\n")
    return DEMO_OWNER, password


def _fresh_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + suffix).unlink()


async def run_demo(options: DemoOptions, out: TextIO) -> int:
    from gateway.app import Gateway, stop_on_signals
    from gateway.clock import ScaledClock
    from gateway.sim.live import LiveSimulation, SimPublisher
    from gateway.sim.model import HouseModel

    house = demo_house()
    zone = local_zone_name()
    tz = ZoneInfo(zone)
    config = demo_config(house, options, zone)
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    await asyncio.to_thread(_fresh_database, config.store_path)
    token = await asyncio.to_thread(demo_token, config.token_file, config.data_dir / TOKEN_FILE)
    owner, password = await asyncio.to_thread(demo_owner, config.token_file.with_name("users.json"),
                                              config.data_dir / PASSWORD_FILE)

    clock = ScaledClock(options.speed, start_epoch(options.start, tz))
    gateway = Gateway(config, clock=clock, out=out)
    stop = asyncio.Event()
    stop_on_signals(stop.set)

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    def narrate(t: float, text: str) -> None:
        say(f"[{datetime.fromtimestamp(t, tz):%a %H:%M}] resident: {text}")

    run = asyncio.create_task(gateway.run(install_signal_handlers=False), name="demo:gateway")
    ready = asyncio.create_task(gateway.ready.wait(), name="demo:ready")
    await asyncio.wait({run, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        try:
            run.result()
        except OSError as err:
            raise HearthError(f"hearth demo cannot start: {err} (another program on that port? try --port)") from err
        return 1
    api_url = gateway.api.url if gateway.api is not None else "-"
    hour_s = 3600 / options.speed
    say("")
    indoors = [room for room in house.rooms if room != "outside"]
    say(f"Hearth demo: a simulated house ({len(indoors)} rooms, {len(house.devices)} devices) and its "
        f"resident, {options.speed:g}x real time (a simulated hour every {hour_s:g} s)")
    say(f"  web UI:      {api_url}/")
    say(f"  log in as:   {owner} / {password}")
    say(f"  login token: {token}  (or open {api_url}/#token={token})")
    say(f"  MQTT:        mqtt://{gateway.broker.host}:{gateway.broker.port} (embedded broker, loopback only)")
    bad = ("never" if options.bad_morning_day is None
           else (datetime.fromtimestamp(clock.time(), tz).date() + timedelta(days=options.bad_morning_day))
           .strftime("%A"))
    visit_day = calendar.day_name[visit_weekday(options.seed)]
    say(f"  simulated time starts {datetime.fromtimestamp(clock.time(), tz):%a %H:%M} ({zone}); "
        f"the scripted bad morning: {bad}")
    say(f"  the resident goes shopping most days, and visits the family every {visit_day} afternoon")
    say(f"  data: {config.data_dir} (the login is kept; the database starts afresh each run). Ctrl-C stops.")
    say("")

    model = HouseModel(house, start=clock.time(), tz=tz, seed=options.seed, bad_morning_day=options.bad_morning_day,
                       narrate=narrate)
    try:
        async with SimPublisher("127.0.0.1", gateway.broker.port, client_id=f"hearth-demo-house-{os.getpid()}",
                                username=config.mqtt.username, password=config.mqtt.password) as publisher, \
                LiveSimulation(model, clock, publisher):
            stopped = asyncio.create_task(stop.wait(), name="demo:stop")
            await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
    finally:
        gateway.request_stop()
        await run
    return 0
