"""The resident's page in a real browser against a real gateway (the test house, elderly monitoring with
daughter and neighbour as contacts): set the tablet up, tap "I'm fine", brush "Call for help" once (nothing
happens), tap it twice (the family is told, the page says so), and see a caregiver's acknowledgement. Then
on ``hearth demo``'s bad morning: the morning check goes off, "I'm fine" answers it and the family hears."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker import free_port
from tests.gateway_process import Api, wait_until
from tests.test_demo import Demo
from tests.ui.conftest import TABLET, House, PageProblems

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

FINE = "I\u2019m fine"  # the page's typographic apostrophe


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@pytest.fixture
def tablet(browser: Any) -> Any:
    context = browser.new_context(viewport=TABLET, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    problems = PageProblems(page)
    try:
        yield page, problems
    finally:
        context.close()
    assert problems.dialogs == []
    assert problems.errors == []


def open_page(page: Any, house: House) -> None:
    page.goto(f"{house.url}/resident#token={house.token}")
    expect(page.locator("#resident")).to_be_visible()
    expect(page.locator("#clock")).not_to_have_text("--:--")
    assert "token=" not in page.url


def active_help(house: House) -> list[dict[str, Any]]:
    status, body = house.api.call("GET", "/api/alerts?state=active")
    assert status == 200
    return [a for a in body["alerts"] if a["key"] == "panic"]


def test_set_up_the_tablet_with_a_token(house: House, tablet: Any, shoot: Any) -> None:
    page, _ = tablet
    page.goto(f"{house.url}/resident")
    expect(page.locator("#setup-form")).to_be_visible()
    shoot(page, "resident-01-setup")
    page.fill("#setup-token", "hth_000000000000_" + "a" * 43)
    page.click("#setup-submit")
    expect(page.locator("#setup-error")).to_contain_text("not valid")
    page.fill("#setup-token", house.token)
    page.click("#setup-submit")
    expect(page.locator("#resident")).to_be_visible()
    expect(page.get_by_role("button", name=FINE)).to_be_visible()
    # Set up for good: a reload goes straight to the page.
    page.reload()
    expect(page.locator("#resident")).to_be_visible()


def test_large_targets_and_text(house: House, tablet: Any) -> None:
    page, _ = tablet
    open_page(page, house)
    for name in (FINE, "Call for help"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box["height"] >= 96 and box["width"] >= 96, (name, box)
    sizes = page.evaluate("""() => [...document.querySelectorAll('#resident p, #resident li, #resident button')]
        .filter((e) => e.offsetParent).map((e) => parseFloat(getComputedStyle(e).fontSize))""")
    assert min(sizes) >= 20
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]


def test_im_fine(house: House, tablet: Any, shoot: Any) -> None:
    page, _ = tablet
    open_page(page, house)
    shoot(page, "resident-02-page")
    page.get_by_role("button", name=FINE).click()
    # Nothing was open at this hour: recorded, nobody told.
    expect(page.locator("#status")).to_have_text("Thank you. Noted.")
    status, body = house.api.call("GET", "/api/resident")
    assert status == 200 and body["last_check_in"] is not None
    shoot(page, "resident-03-fine")


def test_call_for_help_needs_a_second_tap(house: House, tablet: Any, shoot: Any) -> None:
    page, _ = tablet
    open_page(page, house)
    help_button = page.locator("#help")
    # A brush: one tap arms it, and nothing is called; Cancel takes it back.
    help_button.click()
    expect(help_button).to_have_text("Tap again to call")
    expect(page.locator("#status")).to_have_text("Tap again to call for help.")
    shoot(page, "resident-04-help-armed")
    assert active_help(house) == []
    page.get_by_role("button", name="Cancel").click()
    expect(help_button).to_have_text("Call for help")
    expect(page.locator("#status")).to_have_text("Not called.")
    assert active_help(house) == []

    # Tap, tap: called. The daughter is told first, the neighbour two seconds later (the test house's
    # panic escalation), and the page lists both.
    help_button.click()
    help_button.click()
    expect(page.locator("#status")).to_have_text("Help is called. Daughter is being told.")
    (alert,) = wait_until(lambda: active_help(house), what="the call for help as an alert")
    assert alert["severity"] == "critical" and alert["title"] == "Call for help"
    assert alert["policy"]["contacts"] == ["daughter", "neighbour"]
    expect(page.locator("#help-open")).to_contain_text("Help was called at")
    told = page.locator("#told li")
    expect(told.filter(has_text="Daughter was told: Call for help")).to_have_count(1)
    shoot(page, "resident-05-help-called")
    wait_until(lambda: len(active_help(house)[0]["notifications"]) >= 2, what="the neighbour to be told")
    page.reload()
    expect(told.filter(has_text="Neighbour was told: Call for help")).to_have_count(1, timeout=10000)

    # A caregiver acknowledges it: the page says who has seen it.
    status, acked = house.api.call("POST", f"/api/alerts/{alert['id']}/ack")
    assert status == 200 and acked["acknowledged_by"].startswith("token:")
    page.reload()
    # Acknowledged with a machine token: seen, by nobody with a name to show.
    expect(page.locator("#help-open")).to_have_text("Your call for help has been seen.")
    shoot(page, "resident-06-help-seen")
    status, _ = house.api.call("POST", f"/api/alerts/{alert['id']}/resolve", {"note": "test over"})
    assert status == 200


# ------------------------------------------------------------------ the demo's bad morning

# Ten minutes a second, from before the morning check's window (06:00; the house's first states, a few
# simulated minutes after the start, count as movement): as tests/test_demo.py, the check goes off at 09:30,
# ~24 s after the start; she would get up at 11:40, 13 s later.
DEMO_SPEED = 600
DEMO_START = "05:30"


class _Demo(Demo):
    """``hearth demo`` as tests/test_demo.py runs it, at this module's speed and start."""

    def __init__(self, data_dir: Path, port: int) -> None:
        hearth = Path(sys.executable).parent / "hearth"
        self.proc = subprocess.Popen(
            [str(hearth), "demo", "--speed", str(DEMO_SPEED), "--port", str(port), "--data-dir", str(data_dir),
             "--start", DEMO_START, "--bad-morning-day", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1", TZ="UTC"),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()


@pytest.fixture
def demo(tmp_path: Path, browser: Any) -> Iterator[tuple[Any, Api, str]]:
    port = free_port()
    process = _Demo(tmp_path / "demo-data", port)
    try:
        url = process.wait_for(r"web UI: +(http://127\.0\.0\.1:\d+)/", timeout_s=30).group(1)
        token = process.wait_for(r"login token: (hth_\S+)", timeout_s=5).group(1)
        yield process, Api(port, token), url
    finally:
        code = process.stop()
    assert code == 0, process.text()


def test_im_fine_answers_the_demo_bad_morning(demo: Any, tablet: Any, shoot: Any) -> None:
    _process, api, url = demo

    def morning() -> dict[str, Any] | None:
        status, body = api.call("GET", "/api/alerts?state=active")
        return next((a for a in body["alerts"] if a["key"] == "morning"), None) if status == 200 else None

    alert = wait_until(morning, timeout_s=45, what="the bad morning's alert")
    page, _ = tablet
    page.goto(f"{url}/resident#token={api.token}")
    expect(page.locator("#told li").filter(has_text="Family was told: Morning check")).to_have_count(1)
    shoot(page, "resident-07-demo-morning")
    page.get_by_role("button", name=FINE).click()
    expect(page.locator("#status")).to_contain_text("told you are fine.")
    expect(page.locator("#status")).to_contain_text("Family")
    status, done = api.call("GET", "/api/alerts?state=all")
    assert status == 200
    resolved = next(a for a in done["alerts"] if a["id"] == alert["id"])
    assert resolved["state"] == "resolved" and resolved["resolution"] == "resident checked in"
    assert [n["target"] for n in resolved["notifications"] if n["kind"] == "resolved"][:1] == ["family"]
    expect(page.locator("#told li").filter(has_text="Family was told you are fine")).to_have_count(1)
    shoot(page, "resident-08-demo-fine")

    # And a call for help on the demo house: tap, tap.
    page.locator("#help").click()
    page.locator("#help").click()
    expect(page.locator("#status")).to_have_text("Help is called. Family is being told.")
    expect(page.locator("#help-open")).to_be_visible()
    shoot(page, "resident-09-demo-help")
