"""Weight and speed of the web UI with the simulated house of 1,000 devices: what a first visit to the house
page, the resident page and the energy page transfers, and how long each takes to become usable.

    python -m bench.ui_load [--repeats 5] [--throttle 4] [--pages house,resident,energy,energy-link]

A private Mosquitto, the house announced (bridge/devices and one retained state per device), ``hearth run``
as a process of its own (as bench.memory starts it), with its API on loopback. The first-start API token
logs a warm-up page in (``/#token=...``, as ``hearth demo``'s link does); the session cookie it gets is
what every measured visit starts with, in a fresh browser context each (an empty cache: a first visit, not
a reload). The browser is Debian's Chromium driven by Playwright, headless with the flags of the UI tests
(tests/ui/conftest.py), at a phone's size (the resident page at its tablet's, upright).

``energy`` is the house page's Energy tab, measured from the switch once the house page is interactive (what
a person does); ``energy-link`` is ``/#/energy`` opened directly (a bookmark), measured from the navigation.
Each page is loaded ``--repeats`` times with the CPU throttled (CDP ``Emulation.setCPUThrottlingRate``,
``--throttle``, 4 by default: a Pi-class or low-end phone's CPU) and as many times unthrottled; median and
max are printed. Per visit, from the navigation's start:

- transfer: every HTTP response's bytes on the wire (CDP ``Network.loadingFinished`` ``encodedDataLength``,
  headers included) and their bodies as the page got them (``Network.dataReceived`` ``dataLength``), split
  into the static files (``/``, ``/resident``, ``/ui/...``) and the data (``/api/...``); the WebSocket's
  received frames beside them; the number of requests; whether any response came compressed
  (``Content-Encoding``), and what gzip -6 would make of the bodies (an estimate, not served);
- time to interactive (TTI): the page is *ready* when its content is on screen (house: the first
  ``article.tile`` visible and the connection badge ``#conn`` saying "live"; resident: the page shown with
  the gateway's clock in it; energy: the daily bars drawn by uPlot, no power chart still "Loading…" and the
  badge "live"), checked at every animation frame in the page; TTI is the end of the last long task
  (PerformanceObserver ``longtask``: 50 ms or more on the main thread) before a 500 ms quiet window that
  starts no earlier than ready, or ready itself when no long task comes after it. First contentful paint
  (FCP) is printed beside it.

Lines: one per page, throttle and figure; the last line is
``ui_load: <KB> KB house page, <ms> ms to interactive at <N>x CPU (median of <R>)``.
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import statistics
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._broker import BenchBroker
from bench._gateway import GatewayProcess, announce, free_port, write_config
from gateway.sim import scaled_house

DEVICES = 1000
CHROMIUM = os.environ.get("HEARTH_CHROMIUM", "/usr/bin/chromium")
# The UI tests' flags (tests/ui/conftest.py; bench must not import tests/): no sandbox (root in a
# container), no GPU, none of Chromium's own network traffic (nowhere to go, and it would count here).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 800, "height": 1280}  # the resident page's tablet, upright
QUIET_MS = 500  # no long task for this long after ready: the main thread is taken to be idle
_VISIT_TIMEOUT_S = 90.0  # one visit, ready and quiet; a 4x-throttled 1,000-tile page on a busy machine is slow
_DEVICES_TIMEOUT_S = 60.0

# Ready, per page: what a person waits for before using it. Checked in the page at every animation frame.
_READY = {
    "house": """() => {
        const tile = document.querySelector("article.tile");
        const conn = document.getElementById("conn");
        return { tile: !!tile && tile.checkVisibility(), live: !!conn && conn.textContent.trim() === "live" };
    }""",
    "resident": """() => {
        const main = document.getElementById("resident");
        const clock = document.getElementById("clock");
        return { shown: !!main && !main.hidden && main.checkVisibility(),
                 clock: !!clock && clock.textContent.trim() !== "--:--" };
    }""",
    "energy": """() => {
        const root = document.getElementById("energy");
        const conn = document.getElementById("conn");
        const loading = root ? [...root.querySelectorAll("p.muted")].some((p) => p.textContent === "Loading…")
                             : true;
        return { bars: !!root && !!root.querySelector(".chart.bars canvas"), loaded: !loading,
                 live: !!conn && conn.textContent.trim() === "live",
                 // a card per power meter, or the page's word that there is none
                 meters: !!root && (!!root.querySelector("article.card.power")
                                    || root.textContent.includes("No device measures")) };
    }""",
}
_READY["energy-link"] = _READY["energy"]
# "energy": the house page, then its Energy tab (measured from the switch); "energy-link": /#/energy opened
# directly (a bookmark), measured from the navigation.
PATHS = {"house": "/#/house", "resident": "/resident", "energy": "/#/house", "energy-link": "/#/energy"}
# What the page shows once interactive, counted: 1,000 tiles, or none, tell different stories.
_SHOWN = {
    # Every tile, and those filled yet (a tile left for a later slice is an empty card of its size until then).
    "house": """() => ({ tiles: document.querySelectorAll("article.tile").length,
                        filled: document.querySelectorAll("article.tile:not([data-pending])").length })""",
    "resident": """() => ({ reminders: document.querySelectorAll("#reminders li").length })""",
    "energy": """() => ({ power_charts: document.querySelectorAll("#energy article.card.power").length,
                         no_meter: +document.getElementById("energy").textContent.includes("No device measures") })""",
}
_SHOWN["energy-link"] = _SHOWN["energy"]

# Installed before any of the page's scripts: long tasks, and the first moment each ready part holds.
_PROBE = """(ready) => {
    const probe = window.__uiLoad = { longTasks: [], parts: {}, readyAt: null, start: 0, longtask: true };
    try {
        new PerformanceObserver((list) => {
            for (const e of list.getEntries()) probe.longTasks.push([e.startTime, e.startTime + e.duration]);
        }).observe({ type: "longtask", buffered: true });
    } catch (err) { probe.longtask = false; }
    const tick = () => {
        if (document.readyState !== "loading") {
            const now = performance.now();
            const parts = probe.check();
            for (const [name, ok] of Object.entries(parts)) {
                if (ok && !(name in probe.parts)) probe.parts[name] = now - probe.start;
            }
            if (Object.values(parts).every(Boolean)) { probe.readyAt = now; return; }
        }
        requestAnimationFrame(tick);
    };
    // Measure again from `start` (performance.now()) with another ready: a switch of tab in the page.
    probe.arm = (source, start) => {
        probe.check = new Function(`return (${source})();`);
        Object.assign(probe, { start, parts: {}, readyAt: null });
        requestAnimationFrame(tick);
    };
    probe.arm(ready, 0);
}"""

# Resolves (polled by Playwright) once QUIET_MS have passed with no long task after ready: the TTI.
_QUIET = """(quietMs) => {
    const probe = window.__uiLoad;
    if (!probe || probe.readyAt === null) return false;
    const tasks = probe.longTasks.filter(([, end]) => end > probe.start);
    const last = Math.max(probe.readyAt, ...tasks.map(([, end]) => end));
    if (performance.now() - last < quietMs) return false;
    const paint = performance.getEntriesByName("first-contentful-paint")[0];
    const nav = performance.getEntriesByType("navigation")[0];
    return { tti: last - probe.start, ready: probe.readyAt - probe.start, parts: probe.parts,
             fcp: paint && probe.start === 0 ? paint.startTime : null, longTasks: tasks.length,
             longTaskMs: tasks.reduce((sum, [s, e]) => sum + (e - Math.max(s, probe.start)), 0),
             longtask: probe.longtask };
}"""


@dataclass
class Response:
    url: str
    mime: str = ""
    encoding: str = ""
    wire_bytes: int = 0
    body_bytes: int = 0
    finished: bool = False

    @property
    def is_data(self) -> bool:
        path = self.url.split("://", 1)[-1].partition("/")[2]
        return path.startswith("api/")


@dataclass
class Network:
    """What one page's CDP session saw on the network."""

    responses: dict[str, Response] = field(default_factory=dict)
    requests: int = 0
    ws_frames: int = 0
    ws_bytes: int = 0
    ws_extensions: str = ""
    # The frames as permessage-deflate would send them (one deflate stream, context kept, as aiohttp does):
    # CDP shows a frame's payload inflated, so its size on the wire is estimated here.
    _deflate: Any = field(default_factory=lambda: zlib.compressobj(wbits=-15))
    ws_deflated_bytes: int = 0

    def reset(self) -> None:
        """Count from now on (the WebSocket's deflate stream goes on: it is the same connection)."""
        self.responses, self.requests, self.ws_frames, self.ws_bytes, self.ws_deflated_bytes = {}, 0, 0, 0, 0

    def attach(self, cdp: Any) -> None:
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.dataReceived", self._data)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.webSocketFrameReceived", self._frame)
        cdp.on("Network.webSocketHandshakeResponseReceived", self._handshake)

    def _sent(self, event: dict[str, Any]) -> None:
        if not event["request"]["url"].startswith("data:"):
            self.requests += 1
            self.responses.setdefault(event["requestId"], Response(event["request"]["url"]))

    def _response(self, event: dict[str, Any]) -> None:
        response = self.responses.setdefault(event["requestId"], Response(event["response"]["url"]))
        response.mime = event["response"].get("mimeType", "")
        headers = {k.lower(): v for k, v in event["response"].get("headers", {}).items()}
        response.encoding = headers.get("content-encoding", "")

    def _data(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.responses:
            self.responses[event["requestId"]].body_bytes += int(event.get("dataLength", 0))

    def _finished(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.responses:
            response = self.responses[event["requestId"]]
            response.wire_bytes = int(event.get("encodedDataLength", 0))
            response.finished = True

    def _handshake(self, event: dict[str, Any]) -> None:
        headers = {k.lower(): v for k, v in event["response"].get("headers", {}).items()}
        self.ws_extensions = headers.get("sec-websocket-extensions", "")

    def _frame(self, event: dict[str, Any]) -> None:
        payload = event["response"].get("payloadData", "").encode("utf-8")
        self.ws_frames += 1
        self.ws_bytes += len(payload)
        # RFC 7692: each message is flushed with Z_SYNC_FLUSH and its last 4 bytes (00 00 ff ff) dropped.
        self.ws_deflated_bytes += len(self._deflate.compress(payload) + self._deflate.flush(zlib.Z_SYNC_FLUSH)) - 4

    @property
    def ws_wire_bytes(self) -> int:
        """The frames' payloads as sent: deflated when the handshake agreed on it (headers not counted)."""
        return self.ws_deflated_bytes if "permessage-deflate" in self.ws_extensions else self.ws_bytes


@dataclass
class Visit:
    tti_ms: float
    ready_ms: float
    fcp_ms: float
    wire_bytes: int
    body_bytes: int
    static_bytes: int
    data_bytes: int
    gzip_bytes: int
    requests: int
    ws_bytes: int
    ws_wire_bytes: int
    ws_extensions: str
    parts: dict[str, float]
    shown: dict[str, int]
    long_tasks: int
    long_task_ms: float
    encodings: set[str]
    files: dict[str, int]

    @property
    def transfer_bytes(self) -> int:
        """Everything the visit received: HTTP on the wire, headers included, and the WebSocket's frames."""
        return self.wire_bytes + self.ws_wire_bytes


def _gzip_size(cdp: Any, request_id: str) -> int | None:
    import base64

    try:
        body = cdp.send("Network.getResponseBody", {"requestId": request_id})
    except Exception:  # evicted from the browser's buffer, or a response without a body
        return None
    raw = base64.b64decode(body["body"]) if body.get("base64Encoded") else body["body"].encode("utf-8")
    return len(gzip.compress(raw, compresslevel=6))


def visit(browser: Any, base_url: str, page_name: str, storage_state: dict[str, Any], throttle: float) -> Visit:
    viewport = TABLET if page_name == "resident" else PHONE
    context = browser.new_context(viewport=viewport, storage_state=storage_state)
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        network = Network()
        network.attach(cdp)
        cdp.send("Network.enable", {})
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})  # a first visit, whatever the context
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
        first = "house" if page_name == "energy" else page_name
        page.add_init_script(script=f"({_PROBE})({_READY[first]!r})")
        page.goto(base_url + PATHS[page_name], wait_until="commit", timeout=_VISIT_TIMEOUT_S * 1000)
        result = page.wait_for_function(_QUIET, arg=QUIET_MS, polling=100, timeout=_VISIT_TIMEOUT_S * 1000)
        if page_name == "energy":
            # The house page first, interactive; then its Energy tab, measured from the switch.
            network.reset()
            page.evaluate("""(ready) => { window.__uiLoad.arm(ready, performance.now());
                                          location.hash = "#/energy"; }""", _READY["energy"])
            result = page.wait_for_function(_QUIET, arg=QUIET_MS, polling=100, timeout=_VISIT_TIMEOUT_S * 1000)
        figures = result.json_value()
        shown = page.evaluate(_SHOWN[page_name])
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})  # the body reads below need no throttle
        responses = [(rid, r) for rid, r in network.responses.items() if r.finished]
        gzip_total = 0
        for rid, response in responses:
            gzipped = _gzip_size(cdp, rid)
            gzip_total += response.body_bytes if gzipped is None else min(gzipped, response.body_bytes)
        files = {"/" + r.url.split("/", 3)[-1]: r.body_bytes for _, r in responses if not r.is_data}
        return Visit(
            tti_ms=figures["tti"], ready_ms=figures["ready"], fcp_ms=figures["fcp"] or float("nan"),
            wire_bytes=sum(r.wire_bytes for _, r in responses),
            body_bytes=sum(r.body_bytes for _, r in responses),
            static_bytes=sum(r.body_bytes for _, r in responses if not r.is_data),
            data_bytes=sum(r.body_bytes for _, r in responses if r.is_data),
            gzip_bytes=gzip_total, requests=network.requests, ws_bytes=network.ws_bytes,
            ws_wire_bytes=network.ws_wire_bytes, ws_extensions=network.ws_extensions, parts=figures["parts"],
            shown=shown,
            long_tasks=figures["longTasks"], long_task_ms=figures["longTaskMs"],
            encodings={r.encoding for _, r in responses if r.encoding}, files=files)
    finally:
        context.close()


def log_in(browser: Any, base_url: str, token: str) -> dict[str, Any]:
    """The UI's own login link, once: the session cookie (and CSRF cookie) every measured visit starts with."""
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/#token={token}", timeout=_VISIT_TIMEOUT_S * 1000)
        page.wait_for_function(f"() => Object.values(({_READY['house']})()).every(Boolean)",
                               timeout=_VISIT_TIMEOUT_S * 1000)
        state: dict[str, Any] = context.storage_state()
        return state
    finally:
        context.close()


def _kb(n: float) -> str:
    return f"{n / 1024:,.1f} KB"


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), max(values)


def report(page_name: str, throttle: float, visits: list[Visit]) -> list[str]:
    label = f"{page_name}, CPU {throttle:g}x"
    tti = _stats([v.tti_ms for v in visits])
    ready = _stats([v.ready_ms for v in visits])
    fcp = _stats([v.fcp_ms for v in visits]) if page_name != "energy" else (math.nan, math.nan)
    total = _stats([float(v.transfer_bytes) for v in visits])
    parts = ", ".join(f"{name} {statistics.median(v.parts.get(name, float('nan')) for v in visits):,.0f} ms"
                      for name in visits[0].parts)
    encodings = ", ".join(sorted(set().union(*(v.encodings for v in visits)))) or "none"
    median = statistics.median
    deflate = "permessage-deflate" in visits[0].ws_extensions
    ws = (f"WebSocket {_kb(median(v.ws_wire_bytes for v in visits))}"
          + (f" deflated (estimated; {_kb(median(v.ws_bytes for v in visits))} inflated)" if deflate
             else " (not compressed)") if visits[0].ws_bytes else "no WebSocket")
    return [
        f"{label}: time to interactive median {tti[0]:,.0f} ms, max {tti[1]:,.0f} ms "
        f"(ready median {ready[0]:,.0f} ms, max {ready[1]:,.0f} ms; first {parts}; first contentful paint "
        f"{'n/a (a tab switch)' if math.isnan(fcp[0]) else f'{fcp[0]:,.0f} ms'}; "
        f"long tasks {median(v.long_tasks for v in visits):g}, "
        f"{median(v.long_task_ms for v in visits):,.0f} ms in all; {len(visits)} visits)",
        f"{label}: shown at interactive, per visit: " + "; ".join(
            ", ".join(f"{name} {count}" for name, count in v.shown.items()) for v in visits),
        f"{label}: transfer median {_kb(total[0])}, max {_kb(total[1])} = HTTP "
        f"{_kb(median(v.wire_bytes for v in visits))} on the wire ({median(v.requests for v in visits):g} requests; "
        f"bodies {_kb(median(v.body_bytes for v in visits))}: static {_kb(median(v.static_bytes for v in visits))}, "
        f"API {_kb(median(v.data_bytes for v in visits))}) + {ws}; HTTP compression: {encodings} "
        f"(gzip -6 would make the bodies {_kb(median(v.gzip_bytes for v in visits))})",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--throttle", type=float, default=4.0, help="CPU slow-down of the throttled visits")
    parser.add_argument("--pages", default="house,resident,energy,energy-link")
    args = parser.parse_args(argv)
    pages = [p for p in args.pages.split(",") if p]
    unknown = set(pages) - set(PATHS)
    if unknown:
        parser.error(f"unknown pages: {', '.join(sorted(unknown))} (known: {', '.join(PATHS)})")
    repeats = max(1, min(args.repeats, 50))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise SystemExit("the playwright package is not installed (pip install playwright; Chromium comes from apt)"
                         ) from err
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"no Chromium at {CHROMIUM} (apt-get install chromium)")

    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start")
    house = scaled_house(DEVICES)
    results: dict[tuple[str, float], list[Visit]] = {}
    with BenchBroker() as broker, tempfile.TemporaryDirectory(prefix="hearth-ui-load-") as tmp:
        data_dir = Path(tmp)
        config = write_config(data_dir / "config.toml", broker_port=broker.port, data_dir=data_dir, house=house,
                              api_port=free_port())
        announce(broker.port, house)
        with GatewayProcess(config, data_dir) as gateway:
            gateway.wait_ready()
            gateway.wait_devices(DEVICES, timeout_s=_DEVICES_TIMEOUT_S)
            if not gateway.token or not gateway.api_url:
                raise SystemExit("the gateway printed no API token or URL on its first start")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                     timeout=_VISIT_TIMEOUT_S * 1000)
                try:
                    print(f"browser: Chromium {browser.version}, headless; {DEVICES} devices known to the gateway")
                    state = log_in(browser, gateway.api_url, gateway.token)
                    for page_name in pages:
                        # Unthrottled and throttled visits alternate, so a busy spell of the machine
                        # falls on both alike.
                        for _ in range(repeats):
                            for throttle in (args.throttle, 1.0):
                                results.setdefault((page_name, throttle), []).append(
                                    visit(browser, gateway.api_url, page_name, state, throttle))
                        for throttle in (args.throttle, 1.0):
                            for line in report(page_name, throttle, results[(page_name, throttle)]):
                                print(line, flush=True)
                        for throttle in (args.throttle, 1.0):
                            empty = sum(v.shown.get("no_meter", 0) for v in results[(page_name, throttle)])
                            if empty:
                                # The page drew its charts before the WebSocket's device snapshot came: it
                                # was "ready" with nothing to show, so those visits are not comparable.
                                print(f"{page_name}, CPU {throttle:g}x: WARNING: {empty} of {repeats} visits "
                                      "showed 'No device measures power' (the page rendered before the "
                                      "device snapshot arrived); their figures are of an empty page")
                        files = results[(page_name, args.throttle)][0].files
                        print(f"{page_name}: static files " + ", ".join(
                            f"{name} {_kb(size)}" for name, size in sorted(files.items(), key=lambda kv: -kv[1])))
                finally:
                    browser.close()
    print(f"machine: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    key = ("house", args.throttle) if ("house", args.throttle) in results else next(iter(results))
    visits = results[key]
    print(f"ui_load: {statistics.median(v.transfer_bytes for v in visits) / 1024:.1f} KB {key[0]} page, "
          f"{statistics.median(v.tti_ms for v in visits):.0f} ms to interactive at {key[1]:g}x CPU "
          f"(median of {len(visits)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
