"""The running gateway: wires the store, hub, MQTT session, adapters and API together, in that order,
and takes them down in reverse on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TextIO, TypeVar

from gateway import __version__
from gateway.clock import Clock, SystemClock
from gateway.config import Config, is_loopback_host
from gateway.errors import HearthError
from gateway.gcpace import CollectorPacer
from gateway.hub import Hub
from gateway.supervisor import Supervisor, discover_adapters

T = TypeVar("T")
log = logging.getLogger("hearth")


class Gateway:
    """``hearth run``. Construct, then ``await run()``; ``request_stop()`` (or SIGTERM/SIGINT) ends it."""

    def __init__(self, config: Config, *, clock: Clock | None = None, out: TextIO | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.out = out or sys.stdout
        self.hub = Hub(self.clock, areas=config.areas, tags=config.tags)
        self.tls_fingerprint: str | None = None  # of the HTTPS certificate, when the API serves HTTPS
        self.store: Any = None
        self.mqtt: Any = None
        self.broker: Any = None  # the embedded broker ([mqtt] mode = "embedded"), else None
        self.supervisor: Supervisor | None = None
        self.api: Any = None
        self.notifier: Any = None
        self.ack_tokens: Any = None
        self.device_meta: Any = None
        self.mdns: Any = None
        self.engine: Any = None
        self.ha_discovery: Any = None  # gateway.hapublish, when [ha_discovery] is enabled
        self.backups: Any = None  # gateway.backup.BackupSchedule, when [backup] is enabled
        self.matter: Any = None  # gateway.matter.sidecar.MatterBridge, when [matter] is enabled
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.event_loop: str | None = None  # "uvloop" or "asyncio", once running

    def request_stop(self) -> None:
        self._stop.set()

    def _api_health(self) -> dict[str, Any] | None:
        api = self.config.api
        if not api.enabled:
            return None
        if self.tls_fingerprint is not None:
            return {"tls": True, "fingerprint": self.tls_fingerprint}
        insecure = not is_loopback_host(api.host)
        return {"tls": False, **({"insecure_http": True} if insecure else {})}

    def health(self) -> dict[str, Any]:
        adapters = self.supervisor.health_report() if self.supervisor else {}
        mqtt_ok = self.mqtt is None or bool(self.mqtt.connected)
        # An adapter waiting for hardware this machine may simply not have (no Bluetooth) is reported,
        # but does not make the gateway unhealthy; one that crashed does.
        adapters_ok = all(a["state"] in ("running", "disabled", "not_ready") for a in adapters.values())
        status = "ok" if self.ready.is_set() and mqtt_ok and adapters_ok else "degraded"
        return {
            "status": status,
            "version": __version__,
            "event_loop": self.event_loop,
            "devices": len(self.hub.devices),
            "mqtt": (
                {"enabled": False} if self.mqtt is None
                else {"enabled": True, "connected": bool(self.mqtt.connected), **self.mqtt.stats(),
                      "broker": ("embedded" if self.broker is not None else "external")}
            ),
            "adapters": adapters,
            "api": self._api_health(),
            "store": self.store.stats() if self.store is not None else None,
            "scenes": None if self.engine is None else {
                "scenes": len(self.engine.scenes), "mode": self.engine.mode,
                "open_alerts": sum(a["state"] == "open" for a in self.engine.alerts.values()),
                **self.engine.counters,
            },
            "notifications": self.notifier.stats() if self.notifier is not None else None,
            "bad_input": dict(self.hub.bad_input_by_source),
            "ha_discovery": self.ha_discovery.stats() if self.ha_discovery is not None else None,
            "backups": self.backups.stats() if self.backups is not None else None,
            "matter": self.matter.health() if self.matter is not None else None,
        }

    def metrics(self) -> str:
        """``/metrics``: the hub's counters and gauges, and what the adapters did not apply (adapter_metrics)."""
        from gateway.api.app import hub_metrics

        text = hub_metrics(self.hub)
        if self.supervisor is not None:
            text += adapter_metrics(self.supervisor.adapter_stats())
        return text

    def _notification_result(self, result: Any) -> None:
        self.hub.counters[f"notifications_{result.status}"] += 1
        if self.engine is not None:
            self.engine.notification_result(result)

    def _notification_progress(self, result: Any) -> None:
        """A notification held for quiet hours, or a channel failing while it is retried: shown on its alert
        (not counted: only final results are)."""
        if self.engine is not None:
            self.engine.notification_result(result)

    def _alert_state(self, alert_id: str) -> str | None:
        """For the notifier: is the alert a held notification speaks of still open?"""
        alert = self.engine.alerts.get(alert_id) if self.engine is not None else None
        return None if alert is None else alert["state"]

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        from gateway.api.app import ApiServer, create_app
        from gateway.api.auth import TokenStore
        from gateway.scenes.engine import SceneEngine
        from gateway.scenes.notify import AckTokens, Notifier, notify_settings
        from gateway.scenes.setup import engine_settings, load_profiles, notify_targets
        from gateway.store import Store

        config = self.config
        # Profiles first: a config that names a broken profile stops here, before anything starts.
        profiles = load_profiles(config)
        targets = notify_targets(config)
        notify_config = notify_settings(config.notify, config.source)
        scene_settings = engine_settings(config)
        loop = asyncio.get_running_loop()
        self.event_loop = loop_name(loop)
        if install_signal_handlers:
            stop_on_signals(self.request_stop)

        data_dir = config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        async with contextlib.AsyncExitStack() as stack:
            self.store = await stack.enter_async_context(
                Store(config.store_path, self.clock, commit_interval_s=config.store.commit_interval_s,
                      retention=config.store.retention(), history_interval_s=config.store.history_interval_s)
            )
            # Names, areas and tags set in the UI win over the adapters' and the config's; they apply to
            # restored devices too, and to scenes even when the API is off.
            from gateway.devicemeta import DeviceMeta

            self.device_meta = DeviceMeta(self.hub, self.store.kv("device_meta"))
            self.device_meta.attach()
            stack.callback(self.device_meta.detach)
            restored = self.hub.restore(await self.store.load_devices())
            self.store.attach(self.hub)
            stack.callback(self.store.detach)
            stack.callback(self.hub.cancel_pending)  # commands that timed out are followed no longer
            store_task = loop.create_task(self.store.run(), name="store:commit-loop")
            stack.push_async_callback(_cancel, store_task)
            log.info("restored %d devices from %s (event loop: %s)", restored, config.store_path, self.event_loop)
            if config.backup.enabled:  # [backup]: the copy runs in a thread, the schedule on the injected clock
                from gateway.backup import schedule_for

                self.backups = schedule_for(config, self.clock)
                backup_task = loop.create_task(self.backups.run(), name="backup:schedule")
                stack.push_async_callback(_cancel, backup_task)

            if config.mqtt.enabled:
                from gateway.mqtt import MqttSession

                mqtt_settings = config.mqtt
                if config.mqtt.embedded:
                    # Before the session: the session's first connect attempt then finds it listening.
                    from gateway.broker import EmbeddedBroker

                    self.broker = await stack.enter_async_context(EmbeddedBroker(config.mqtt))
                    mqtt_settings = self.broker.client_settings()
                    auth = "username and password required" if self.broker.requires_auth else "no authentication"
                    self._say(f"MQTT broker (embedded) listening on {self.broker.host}:{self.broker.port} ({auth})")
                client_id = config.mqtt.client_id or f"hearth-{socket.gethostname()}-{os.getpid()}"[:64]
                self.mqtt = await stack.enter_async_context(MqttSession(mqtt_settings, self.clock, client_id=client_id))
                from gateway.hapublish import enter_ha_discovery

                self.ha_discovery = await enter_ha_discovery(stack, config, self.hub, self.mqtt,
                                                             self.store.kv("ha_discovery"))

            # One mDNS service and one HTTP client session, shared by every adapter (STYLE 7).
            if config.mdns.enabled:
                from gateway.mdns import MdnsError, MdnsService

                try:
                    self.mdns = await stack.enter_async_context(MdnsService(config.mdns.interfaces))
                except MdnsError as err:
                    # No multicast-capable network (yet): everything else works; discovery is off.
                    log.warning("mDNS discovery is off: %s", err)
            import aiohttp

            http = await stack.enter_async_context(aiohttp.ClientSession())
            classes = discover_adapters(config.adapter_enabled)
            self.supervisor = await stack.enter_async_context(
                Supervisor(self.hub, classes, config.adapters, mqtt=self.mqtt, storage_for=self.store.kv,
                           mdns=self.mdns, http=http)
            )

            if config.gateway.loop_watchdog_s > 0:
                from gateway.loopwatch import LoopWatch, adapter_owners

                supervisor = self.supervisor
                strikes = config.gateway.loop_block_strikes

                def blocked(block: Any) -> None:  # on the watcher's thread (or the loop's): hand it to the loop
                    loop.call_soon_threadsafe(supervisor.loop_blocked, block, strikes)

                # Found within loop_watchdog_s: held for half of it, seen within a quarter more, twice.
                watchdog = config.gateway.loop_watchdog_s
                await stack.enter_async_context(LoopWatch(threshold_s=watchdog / 2, poll_s=watchdog / 4,
                                                          owners=adapter_owners(classes), on_block=blocked))

            # Acknowledge links: one-time tokens, kept hashed in the store (a link sent before a restart works).
            self.ack_tokens = AckTokens(self.clock, self.store.kv("ack_links"),
                                        ttl_s=notify_config.ack_link_ttl_h * 3600)
            self.notifier = await stack.enter_async_context(
                Notifier(targets, self.clock, mqtt=self.mqtt, on_result=self._notification_result,
                         on_progress=self._notification_progress, settings=notify_config,
                         timezone=scene_settings.timezone, ack_tokens=self.ack_tokens,
                         alert_state=self._alert_state, commit=self.store.flush_urgent,
                         storage=self.store.kv("held_notifications"))  # quiet hours outlive a restart
            )
            self.engine = SceneEngine(
                self.hub, profiles, notifier=self.notifier, storage=self.store.kv("scenes"),
                trace_storage=self.store.kv("scene_traces"), settings=scene_settings,
                commit=self.store.flush_urgent,
            )
            await stack.enter_async_context(self.engine)
            # Resolved alerts, their deliveries and scene traces live in the engine's memory: pruned there, by the
            # store's daily retention pass ([store] *_retention_days).
            from gateway.personal import engine_retention_hook

            stack.callback(self.store.add_retention_hook(
                engine_retention_hook(self.store, self.engine, config.store.retention())))

            if config.api.enabled:
                from gateway.api.accounts import UserStore
                from gateway.api.ack import add_ack_routes
                from gateway.api.discovered import add_discovered_routes
                from gateway.api.resident import add_resident_routes
                from gateway.api.scenes import add_scene_routes

                tokens = TokenStore(config.token_file)
                initial = await asyncio.to_thread(tokens.ensure_initial)
                stack.callback(tokens.flush)
                users = UserStore(config.token_file.with_name("users.json"))
                has_owner = await asyncio.to_thread(users.has_owner)
                from gateway.api.me import apply_saved

                apply_saved(users, self.notifier)  # the people's own notification settings, over the config's
                app = create_app(self.hub, tokens, users=users, health=self.health, metrics=self.metrics,
                                 command_timeout_s=config.api.command_timeout_s,
                                 store=self.store, device_meta=self.device_meta, config=config)
                add_scene_routes(app, self.engine)
                add_ack_routes(app, self.engine, self.ack_tokens)
                add_resident_routes(app)
                supervisor = self.supervisor
                add_discovered_routes(app, lambda: supervisor.instance("mdns"))
                from gateway.api.matter import add_matter_routes

                add_matter_routes(app, lambda: self.matter)
                ssl_context = None
                if config.api.serves_tls():
                    from gateway.tlscert import ServerCert, ensure_self_signed, fingerprint_of, server_context

                    if config.api.certfile is not None and config.api.keyfile is not None:
                        cert = ServerCert(config.api.certfile, config.api.keyfile,
                                          await asyncio.to_thread(fingerprint_of, config.api.certfile), made=False)
                    else:
                        cert = await asyncio.to_thread(ensure_self_signed, config.data_dir / "tls", config.api.host)
                    ssl_context = await asyncio.to_thread(server_context, cert)
                    self.tls_fingerprint = cert.fingerprint
                    self._say(f"HTTPS certificate {cert.certfile}{' (made now)' if cert.made else ''}, SHA-256 "
                              f"fingerprint {cert.fingerprint}: compare it with what the browser shows once")
                elif not is_loopback_host(config.api.host):
                    log.warning("the API serves plain HTTP beyond loopback (insecure_http = true): passwords and "
                                "tokens cross the network readable")
                self.api = await stack.enter_async_context(
                    ApiServer(app, config.api.host, config.api.port, ssl_context=ssl_context))
                if self.mdns is not None and config.mdns.announce:
                    from gateway.mdns import GatewayAnnouncement

                    await stack.enter_async_context(GatewayAnnouncement(
                        self.mdns, name=config.gateway.name, port=self.api.port, version=__version__,
                        host=config.api.host, auth_required=True))
                if config.matter.enabled:
                    from gateway.matter.sidecar import MatterBridge

                    # After the API listens: the sidecar is a client of it (its own token, the WebSocket).
                    self.matter = await stack.enter_async_context(MatterBridge(
                        config.matter, data_dir=config.data_dir, hub=self.hub, tokens=tokens,
                        api_url=_loopback_url(self.api.url), name=config.gateway.name,
                        ca_file=None if ssl_context is None else cert.certfile))
                if initial:
                    self._say(f"API token (shown once, stored hashed in {config.token_file}): {initial}")
                if not has_owner:
                    # No default password, ever: the owner chooses one, on this machine.
                    where = f" --config {config.source}" if config.source not in ("<defaults>",) \
                        and not config.source.startswith("<") else ""
                    self._say("No owner account yet. Create it with:  hearth user add NAME --role owner" + where
                              + "  (asks for the password; or --password-stdin), or open the web UI from this "
                                f"machine (http://127.0.0.1:{self.api.port}/) and create it there.")
                self._say(f"Hearth {__version__} ready: API at {self.api.url}, {restored} devices restored, "
                          f"{len(self.engine.scenes)} scenes")
            else:
                if config.matter.enabled:
                    log.warning("[matter] enabled, but the Matter bridge reads Hearth through its API, which is "
                                "disabled ([api] enabled = false): no bridge")
                self._say(f"Hearth {__version__} ready (API disabled), {restored} devices restored")
            # Everything built so far (modules, config and profile models, restored devices) lives as long as
            # the process: out of the cyclic collector's sight, a full collection does not walk it again.
            # Measured by bench/latency.py under 2,000 msg/s: without this, full collections of ~100 ms
            # made the tail of scene latency. What the adapters build just after (the bridges' device lists)
            # is frozen once more when start-up has settled.
            gc.freeze()
            # The store's worker thread holds the GIL while it feeds SQLite its rows; a message waiting on
            # the loop would wait up to the switch interval (5 ms by default) for it. 0.5 ms: measured by
            # bench/latency.py under 2,000 msg/s, p99 3.8-4.0 -> 2.0-2.5 ms (1,000 probes each).
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            # The cyclic collector runs between messages, from a timer of this loop, not inside whichever
            # allocation crosses its threshold (most often a scene's answer to a motion report): gcpace.py.
            pacer = CollectorPacer()
            pacer.start(loop)
            stack.callback(pacer.stop)
            settle = loop.create_task(_freeze_when_settled(), name="gateway:gc-freeze")
            stack.push_async_callback(_cancel, settle)
            if _malloc_trim is not None:
                trimmer = loop.create_task(_trim_malloc_periodically(), name="gateway:malloc-trim")
                stack.push_async_callback(_cancel, trimmer)
            self.ready.set()
            # Under systemd (Type=notify): READY=1 now, watchdog pings from this loop while it is served,
            # STOPPING=1 first thing on the way down (entered last, left first). Outside systemd: nothing.
            from gateway.sdnotify import SystemdNotifier

            await stack.enter_async_context(SystemdNotifier(
                status=f"Hearth {__version__} ready: {len(self.hub.devices)} devices"))
            await self._stop.wait()
            log.info("stopping")
        self._say("Hearth stopped")


def _loopback_url(url: str) -> str:
    """The API's URL as a process on this machine reaches it (a server on 0.0.0.0 or :: listens on loopback too)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, f"{netloc}:{parts.port}", "", "", ""))


def adapter_metrics(stats: dict[str, dict[str, Any]]) -> str:
    """Prometheus text for the adapters' ``stats()`` (``Supervisor.adapter_stats``): each adapter's
    ``"dropped": {"by_reason": {reason: count}}`` as ``hearth_adapter_dropped_total{adapter, reason}``.

    By reason only: the per-device counts some adapters also keep (BLE: ``by_device``) would make a series per
    device, hundreds on a busy street; they are in ``/healthz``. Counts restart at zero when an adapter does.
    """
    samples: list[str] = []
    for adapter, entry in sorted(stats.items()):
        result = entry.get("stats")
        dropped = result.get("dropped") if isinstance(result, dict) else None
        by_reason = dropped.get("by_reason") if isinstance(dropped, dict) else None
        if not isinstance(by_reason, dict):
            continue
        for reason, count in sorted(by_reason.items(), key=lambda item: str(item[0])):
            if isinstance(count, (int, float)) and not isinstance(count, bool):
                samples.append(f'hearth_adapter_dropped_total{{adapter="{_label(adapter)}",'
                               f'reason="{_label(str(reason))}"}} {count}')
    if not samples:
        return ""
    return "\n".join([
        "# HELP hearth_adapter_dropped_total Input an adapter received and did not apply, by reason.",
        "# TYPE hearth_adapter_dropped_total counter",
        *samples,
    ]) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# glibc's malloc, tuned for a long-running gateway on a small machine (``hearth run`` only: process-wide
# policy belongs to the process's owner, not to a library user of Gateway). Measured by bench/memory.py
# (1,000 devices, 2,000 msg/s): steady RSS ~89 -> ~83 MB with the three together (CPU cost not measured yet).
# - One arena: the store's SQLite thread otherwise gets an arena of its own (64 MB reserved, ~3-7 MB
#   resident, mostly free) whose free space the event loop can never use. Python allocates small objects
#   through pymalloc anyway, so the shared arena's lock is seldom contended.
# - A fixed mmap threshold: glibc raises it up to 32 MB after the first large free, after which the large
#   transient buffers (a 1,000-device bridge/devices payload, a store commit's JSON chunks) land in the heap
#   and leave holes there; at 128 KiB (glibc's initial value) they are mapped and unmapped as a whole.
# - malloc_trim every TRIM_INTERVAL_S: gives back the free pages inside the heap (glibc only returns its top
#   on its own). It takes well under a millisecond on a heap of this size.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 128 * 1024
# Once per store commit (5 s by default): what a commit freed is handed back before the next one.
TRIM_INTERVAL_S = 5.0
_malloc_trim: Callable[[int], int] | None = None


def tune_malloc() -> bool:
    """Apply the settings above when the C library is glibc (not musl, macOS or Windows, where there is
    nothing to do); call before threads start. True if applied: ``Gateway.run`` then trims periodically."""
    global _malloc_trim
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return False  # not glibc
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    mallopt(_M_ARENA_MAX, 1)
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    _malloc_trim = malloc_trim
    return True


# sched_setattr/sched_getattr by machine (Linux's syscall numbers differ per architecture; glibc wraps neither).
_SCHED_ATTR_SYSCALLS = {
    "x86_64": (314, 315), "aarch64": (274, 275), "arm64": (274, 275), "riscv64": (274, 275),
    "armv7l": (380, 381), "armv6l": (380, 381), "armv8l": (380, 381), "i686": (351, 352), "i386": (351, 352),
}
_SCHED_OTHER, _SCHED_BATCH = 0, 3


def shorten_time_slice(microseconds: int) -> int | None:
    """Ask Linux for a time slice of ``microseconds`` for the calling thread, and so for the threads it starts
    after this (``[gateway] loop_slice_us``); call it on the event loop's thread before it starts others.

    Linux's scheduler since 6.6 (EEVDF) lets a task that was woken run before the one on the core only once that
    one has had its slice (0.7-3 ms, enforced at the next tick) unless the woken task asks for a shorter one:
    a scene's answer to a motion report, arriving while another process or the store's commit has the core,
    waited for it. With 0.1 ms (the kernel's minimum), ``python -m bench.latency`` measured p99 ratios 1.16 and
    1.00 against 1.27 and 1.25 without, alternated; probes over the target during a commit 7 and 1 against 19
    and 20. Unprivileged: a thread's own slice (``sched_setattr``, policy and nice kept as they are).
    Returns the slice the kernel then reports (ns), or None where it was not applied: not Linux, an
    architecture without a known syscall number, a kernel before 6.12 (it keeps no slice of its own per
    task), a policy other than SCHED_OTHER/SCHED_BATCH, or a refusal (a sandbox)."""
    if not sys.platform.startswith("linux") or microseconds <= 0:
        return None
    numbers = _SCHED_ATTR_SYSCALLS.get(os.uname().machine)
    if numbers is None:
        return None
    import ctypes

    class SchedAttr(ctypes.Structure):
        _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32), ("sched_flags", ctypes.c_uint64),
                    ("sched_nice", ctypes.c_int32), ("sched_priority", ctypes.c_uint32),
                    ("sched_runtime", ctypes.c_uint64), ("sched_deadline", ctypes.c_uint64),
                    ("sched_period", ctypes.c_uint64)]

    set_number, get_number = numbers
    libc = ctypes.CDLL(None, use_errno=True)
    attr = SchedAttr()
    if libc.syscall(get_number, 0, ctypes.byref(attr), ctypes.sizeof(SchedAttr), 0) != 0:
        log.debug("sched_getattr failed (errno %d): the kernel's time slice stays", ctypes.get_errno())
        return None
    if attr.sched_policy not in (_SCHED_OTHER, _SCHED_BATCH):
        return None
    wanted = SchedAttr(size=ctypes.sizeof(SchedAttr), sched_policy=attr.sched_policy, sched_flags=0,
                       sched_nice=attr.sched_nice, sched_runtime=microseconds * 1000)
    if libc.syscall(set_number, 0, ctypes.byref(wanted), 0) != 0:
        log.debug("sched_setattr failed (errno %d): the kernel's time slice stays", ctypes.get_errno())
        return None
    if libc.syscall(get_number, 0, ctypes.byref(attr), ctypes.sizeof(SchedAttr), 0) != 0 or not attr.sched_runtime:
        log.debug("this kernel keeps no time slice per task (Linux 6.12 does): the kernel's time slice stays")
        return None
    log.debug("the event loop's time slice: %d us", attr.sched_runtime // 1000)
    return int(attr.sched_runtime)


async def _trim_malloc_periodically() -> None:
    trim = _malloc_trim
    assert trim is not None
    while True:
        # Wall time, not the injected clock: this is about the process's memory, not the house's time.
        await asyncio.sleep(TRIM_INTERVAL_S)
        # In a thread (ctypes lets go of the GIL): the loop goes on meanwhile instead of stopping for
        # the trim's 0.1-0.9 ms, which under load was a step in the tail of scene latency.
        await asyncio.to_thread(trim, 0)


# Long enough for retained messages (bridge/devices of a thousand devices, discovery configs) to be in.
GC_SETTLE_S = 20.0
SWITCH_INTERVAL_S = 0.0005


async def _freeze_when_settled() -> None:
    # Wall time, not the injected clock: this is about the process's memory, not the house's time.
    await asyncio.sleep(GC_SETTLE_S)
    # One full collection first (one pause, once), so that no garbage is frozen for good.
    gc.collect()
    gc.freeze()
    log.debug("gc: %d objects frozen after start-up", gc.get_freeze_count())


def event_loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What ``hearth run`` makes its event loop with (``[gateway] event_loop``); None: asyncio's own.

    uvloop is libuv's loop (Node-RED's) behind asyncio's interface: at 2,000 messages a second each
    message wakes the gateway on its own, and a wake-up of a bare reader costs 24 us of CPU on it against
    39 us on asyncio's loop, whose own share is Python (bench.wakeup: a blocking read, the floor, 25 us).
    "auto" takes it when it is installed."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as err:
        if choice == "uvloop":
            raise HearthError(
                '[gateway] event_loop = "uvloop", but uvloop is not installed (it has no wheel for this '
                'platform): pip install uvloop, or set event_loop = "auto"') from err
        return None
    return uvloop.new_event_loop


def run_on_event_loop(coro: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """Run ``coro`` to its end on the event loop ``[gateway] event_loop`` names (see event_loop_factory)."""
    with asyncio.Runner(loop_factory=event_loop_factory(choice)) as runner:
        return runner.run(coro)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """"uvloop" or "asyncio" (for logs and /healthz)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def stop_on_signals(callback: Callable[[], None]) -> None:
    """Call ``callback`` on SIGTERM or SIGINT (systemd's stop, Ctrl-C). Where the running loop cannot
    take signal handlers (Windows' loops, a loop outside the main thread) the default handling stays."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, callback)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
