"""Browser tests: Debian's Chromium driven by Playwright against a real ``hearth run``.

Chromium comes from apt (``/usr/bin/chromium``; ``scripts/_ui_deps.sh``), never from Playwright's own
download. Without it (or without the playwright package) these tests skip, saying why, unless
``HEARTH_REQUIRE_BROWSER=1`` (CI), where they fail. Screenshots go to ``$HEARTH_UI_SCREENSHOTS`` or the
test run's temporary folder; their paths are listed at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.broker import Mosquitto, MosquittoNotFoundError, free_port
from tests.gateway_process import Api, FakeZigbee2Mqtt, GatewayProcess, wait_until
from tests.scenes.house import bridge_devices, device_id
from tests.scenes.house import config_text as house_config

CHROMIUM = os.environ.get("HEARTH_CHROMIUM", "/usr/bin/chromium")
# The flags this machine's Chromium needs: no sandbox (root in a container), no GPU, and none of
# Chromium's own network traffic (it has nowhere to go and slows start-up).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# The panic alert escalates in seconds, not minutes, and reminds nobody: a test sees it go from the
# daughter to the neighbour and end "unanswered" (about 4 s after the press) while it waits.
PROFILES = """[[profiles]]
use = "elderly-monitoring"
[profiles.params]
contacts = ["daughter", "neighbour"]
panic_escalate_after = "2s"
reminders = 0

[[profiles]]
use = "energy-saving"
[profiles.params]
price_per_kwh = 0.32
"""

_SCREENSHOTS: list[Path] = []


class FakeBridge(FakeZigbee2Mqtt):
    """The fake bridge, also answering devices whose friendly names have a slash ("living/light")."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        topics = [("zigbee2mqtt/+/set", 0), ("zigbee2mqtt/+/+/set", 0)]
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics)
        wait_until(self.client.is_connected, what="the fake bridge to connect")
        self.client.subscribe(topics)


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright; the browser comes from apt)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; see scripts/_ui_deps.sh)"
    return None


def _require_browser() -> None:
    reason = _missing_browser()
    if reason is None:
        return
    if os.environ.get("HEARTH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (HEARTH_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(reason)


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread while
# it is open, and pytest-asyncio cannot run the async tests of other modules inside it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("HEARTH_UI_SCREENSHOTS")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("ui-screenshots")


@dataclass
class House:
    """A running gateway with the test house, its fake Zigbee2MQTT bridge and the API."""

    gateway: GatewayProcess
    api: Api
    z2m: FakeBridge
    url: str
    token: str
    config: Path
    data_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)
    # The owner's account (made through the API with the first-start token): the UI's login.
    username: str = "anna"
    password: str = "correct horse battery"

    def restart(self) -> None:
        assert self.gateway.stop() == 0
        self.gateway = GatewayProcess(self.config, self.data_dir)
        self.gateway.start()


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[House]:
    # `browser` first: without one there is no point starting a house.
    workdir = tmp_path_factory.mktemp("ui-house")
    try:
        broker = Mosquitto(workdir / "mosquitto")
    except MosquittoNotFoundError as err:
        pytest.fail(str(err), pytrace=False)
    with broker:
        api_port = free_port()
        config = workdir / "house.toml"
        config.write_text(
            f"[mqtt]\nport = {broker.port}\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\n\n"
            f'[store]\npath = "{workdir / "hearth.db"}"\ncommit_interval_s = 0.5\n\n'
            f"[api]\nport = {api_port}\ncommand_timeout_s = 3\n\n{house_config(profiles=PROFILES)}"
            # A caregiver's own channel (nothing listens there: the UI sets its quiet hours, no test is sent).
            '\n[notify.carer]\nkind = "apprise"\nurls = ["json://127.0.0.1:9/hearth-ui-test"]\n'
        )
        gateway = GatewayProcess(config, workdir / "data")
        gateway.start()
        assert gateway.token, "the first start prints the API token"
        z2m = FakeBridge(broker.port)
        api = Api(api_port, gateway.token)
        house = House(gateway, api, z2m, f"http://127.0.0.1:{api_port}", gateway.token, config, workdir / "data")
        status, body = api.call("POST", "/api/users", {"username": house.username, "password": house.password,
                                                      "role": "owner"})
        assert status == 201, body
        try:
            z2m.announce(bridge_devices())
            # "ready" does not wait for the MQTT subscription: states sent before it would be lost. The
            # devices (bridge/devices is retained) show that it is there.
            wait_until(lambda: api.device(device_id("bedroom/panic")), what="the house's devices from the bridge")
            initial = {"light": {"state": "OFF", "brightness": 200, "color_temp": 300},
                       "motion": {"occupancy": False, "battery": 90},
                       "climate": {"temperature": 21.5, "humidity": 45.0, "pressure": 1010.0, "battery": 80},
                       "tv": {"state": "ON", "power": 80.0, "energy": 100.0},
                       "fridge": {"state": "ON", "power": 60.0, "energy": 50.0},
                       "radiator": {"local_temperature": 20.5, "occupied_heating_setpoint": 21.0,
                                    "system_mode": "heat", "running_state": "heat"}}
            from tests.scenes.house import HOUSE

            for name in HOUSE:
                kind = name.split("/", 1)[1]
                if kind in initial:
                    z2m.publish(name, initial[kind])
            wait_until(lambda: (d := api.device(device_id("living/tv"))) and d["components"]["main"].get(
                "power_meter"), what="the house's devices in the API")
            yield house
        finally:
            z2m.close()
            if house.gateway.proc and house.gateway.proc.poll() is None:
                house.gateway.stop()


class PageProblems:
    """What a page must not do: JavaScript errors, CSP violations, dialogs (an XSS `alert()`)."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda err: self.errors.append(f"page error: {err}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: Any) -> None:
        # Network failures (a 401 on a wrong token, a refused socket while the gateway restarts) are
        # logged as console errors too; those are expected. Script errors and CSP refusals are not.
        text = message.text
        if message.type == "error" and "Failed to load resource" not in text and "WebSocket connection" not in text:
            self.errors.append(f"console: {text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def phone(browser: Any) -> Iterator[tuple[Any, PageProblems]]:
    """A page at a phone's size (390 x 844), with its problems recorded."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    problems = PageProblems(page)
    try:
        yield page, problems
    finally:
        context.close()
    assert problems.dialogs == [], "a dialog opened: injected script ran"
    assert problems.errors == []


@pytest.fixture
def desktop(browser: Any) -> Iterator[tuple[Any, PageProblems]]:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    problems = PageProblems(page)
    try:
        yield page, problems
    finally:
        context.close()
    assert problems.dialogs == []
    assert problems.errors == []


@pytest.fixture
def shoot(screenshot_dir: Path) -> Any:
    def take(page: Any, name: str, *, full_page: bool = True) -> Path:
        path = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        _SCREENSHOTS.append(path)
        print(f"screenshot: {path}")
        return path

    return take


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SCREENSHOTS:
        terminalreporter.section("web UI screenshots")
        for path in _SCREENSHOTS:
            terminalreporter.write_line(str(path))


# ------------------------------------------------------------------ accessibility (axe-core)

# axe-core, vendored for the tests only (tests/ui/vendor/axe-core/README.md); the gateway never serves it.
AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
# WCAG 2.1 level A and AA, as issue 18 asks: the rules axe tags so (best practices are not asked for).
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
TABLET = {"width": 800, "height": 1280}  # the resident page's tablet, upright


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now: the WCAG 2.1 A/AA violations, each as
    ``{"id", "impact", "help", "nodes": [CSS selector, ...], "why": ...}`` (at most five nodes each;
    ``why``: axe's explanation for the first, e.g. the contrast it measured).

    The page's CSP refuses an injected script (``script-src 'self'``), so the page's context must be
    made with ``bypass_csp=True`` (the ``a11y_page`` fixture); what CSP itself is tested elsewhere."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    return page.evaluate(
        r"""async (tags) => {
            const result = await window.axe.run(document, {
                runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
            return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
                why: (v.nodes[0] && v.nodes[0].failureSummary || "").replace(/\s+/g, " ").trim() }));
        }""",
        list(WCAG_TAGS),
    )


def describe_violations(violations: list[dict[str, Any]]) -> str:
    return "\n".join(f"{v['id']} ({v['impact']}): {v['help']} -- {', '.join(v['nodes'])} -- {v['why']}"
                     for v in violations)


@pytest.fixture(params=["phone", "desktop", "desktop-dark"])
def a11y_page(request: pytest.FixtureRequest, browser: Any) -> Iterator[tuple[Any, PageProblems]]:
    """A page whose context lets axe-core in (``bypass_csp``): at a phone's size, at a desktop's, and at a
    desktop's in the dark colour scheme (the main UI follows the system's)."""
    size = PHONE if request.param == "phone" else DESKTOP
    scheme = "dark" if request.param.endswith("-dark") else "light"
    context = browser.new_context(viewport=size, bypass_csp=True, color_scheme=scheme)
    page = context.new_page()
    problems = PageProblems(page)
    try:
        yield page, problems
    finally:
        context.close()
    assert problems.dialogs == []
    assert problems.errors == []
