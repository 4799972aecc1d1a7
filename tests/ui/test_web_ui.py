"""The web UI in a real browser against a real gateway: log in, see the house, switch a light, acknowledge an
alert, run a scene, open the energy page, rename a device (a name that is an HTML payload stays text)."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_process import wait_until
from tests.scenes.house import device_id
from tests.ui.conftest import PHONE, House, PageProblems

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

XSS_NAME = "<img src=x onerror=alert(1)>"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def log_in_by_link(page: Any, house: House) -> None:
    """The login link `hearth demo` prints: the token rides in the URL fragment, never sent to the server."""
    page.goto(f"{house.url}/#token={house.token}")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("article.tile").first).to_be_visible()
    assert "token=" not in page.url


def tile(page: Any, name: str) -> Any:
    return page.locator(f'article.tile[data-device="{device_id(name)}"]')


def test_log_in_and_see_the_house_by_area(house: House, phone: Any, shoot: Any) -> None:
    page, problems = phone
    page.goto(house.url + "/")
    expect(page.locator("#login-form")).to_be_visible()
    shoot(page, "01-login")
    # The owner account exists (conftest), so the page does not offer to create one.
    expect(page.locator("#setup-form")).to_be_hidden()
    page.fill("#login-username", house.username)
    page.fill("#login-password", "not the password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("Wrong name or password")
    page.fill("#login-password", house.password)
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#whoami")).to_have_text(f"{house.username} (owner)")
    # The session is an HttpOnly cookie: nothing the page's script could hand on is kept in storage.
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["hearth_session"]["httpOnly"] and cookies["hearth_session"]["sameSite"] == "Strict"
    for area in ("bathroom", "bedroom", "hall", "kitchen", "living"):
        expect(page.locator(f'section.area[data-area="{area}"]')).to_be_visible()
    expect(tile(page, "living/tv").locator('.reading[data-key="power_meter.watts"] dd')).to_have_text("80 W")
    expect(tile(page, "living/climate").locator('.reading[data-key="temperature.celsius"] dd')).to_have_text(
        "21.5 °C")
    expect(page.locator('section.area[data-area="living"] article.tile')).to_have_count(6)
    # Usable on a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "02-house-phone")
    # Logged in for good: a reload goes straight to the house.
    page.reload()
    expect(page.locator("#conn")).to_have_text("live")
    assert not [u for u in problems.requests if u.endswith("/api/devices")], "the UI polls instead of listening"


def test_house_on_a_desktop(house: House, desktop: Any, shoot: Any) -> None:
    page, _ = desktop
    log_in_by_link(page, house)
    expect(page.locator("section.area")).to_have_count(5)
    shoot(page, "03-house-desktop")
    # Who is home sits beside the mode; unfolded, its history lies over the page.
    expect(page.locator("#occupancy-state")).to_be_visible()
    page.locator("#occupancy > summary").click()
    expect(page.locator("#occupancy-history")).to_be_visible()
    shoot(page, "03b-occupancy-desktop", full_page=False)


def test_switch_a_light_and_see_the_state_echo(house: House, phone: Any, shoot: Any) -> None:
    page, problems = phone
    log_in_by_link(page, house)
    light = tile(page, "living/light")
    switch = light.locator("button.switch")
    expect(switch).to_have_attribute("aria-checked", "false")
    while not house.z2m.sets.empty():
        house.z2m.sets.get_nowait()
    switch.click()
    # The tile changes when the light reports its new state (the fake bridge echoes the /set), over the
    # WebSocket: the UI never sets it by itself.
    expect(switch).to_have_attribute("aria-checked", "true")
    assert house.z2m.sets.get(timeout=5) == ("living/light", {"state": "ON"})
    # A change made elsewhere (a wall switch) shows up too, with no click and no polling.
    house.z2m.publish("living/light", {"state": "OFF"})
    expect(switch).to_have_attribute("aria-checked", "false")
    # The brightness slider sends a level command.
    light.locator('input[type="range"]').fill("30")
    name, payload = house.z2m.sets.get(timeout=5)
    assert name == "living/light" and payload.get("brightness") == round(30 * 254 / 100)
    expect(light.locator(".slider output")).to_have_text("30%")
    # The thermostat's target goes up by half a degree.
    radiator = tile(page, "living/radiator")
    expect(radiator.locator("output.target")).to_have_text("21 °C")
    radiator.get_by_label("Raise target").click()
    expect(radiator.locator("output.target")).to_have_text("21.5 °C")
    shoot(page, "04-light-switched")
    assert not [u for u in problems.requests if "/api/devices" in u and "/meta" not in u]


def test_acknowledge_an_alert(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, house)
    house.z2m.publish("bedroom/panic", {"action": "single"})
    banner = page.locator("#alert-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Panic button")
    expect(page.locator("#alert-count")).to_have_text("1")
    shoot(page, "05-alert-banner")
    page.click('nav a[data-page="alerts"]')
    card = page.locator("article.alert.attention").filter(has_text="Panic button")
    expect(card).to_have_count(1)
    shoot(page, "06-alerts-open")
    card.locator("button.ack").click()
    acked = page.locator("article.alert").filter(has_text="acknowledged")
    expect(acked).to_have_count(1)
    expect(page.locator("article.alert.attention")).to_have_count(0)
    expect(banner).to_be_hidden()
    shoot(page, "07-alerts-acknowledged")
    _, alerts = house.api.call("GET", "/api/alerts")
    panic = next(a for a in alerts["alerts"] if a["key"] == "panic")
    assert panic["acknowledged_by"] == "token:initial"


def test_scenes_enable_run_and_trace(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, house)
    page.click('nav a[data-page="scenes"]')
    scene_id = "energy-saving.lights-off-empty-room"
    card = page.locator(f'article.scene[data-scene="{scene_id}"]')
    expect(card).to_be_visible()
    toggle = card.locator('input[type="checkbox"]')
    expect(toggle).to_be_checked()
    toggle.uncheck()
    wait_until(lambda: not house.api.call("GET", f"/api/scenes/{scene_id}")[1]["enabled"], what="scene disabled")
    expect(card.locator("label.toggle")).to_contain_text("disabled")
    card.locator('input[type="checkbox"]').check()
    wait_until(lambda: house.api.call("GET", f"/api/scenes/{scene_id}")[1]["enabled"], what="scene enabled")
    card.get_by_role("button", name="Run now").click()
    trace = card.locator("details.trace").first
    expect(trace).to_be_visible()
    expect(trace.locator("summary")).to_contain_text("Run by hand")
    trace.locator("summary").click()
    shoot(page, "08-scenes")


def test_energy_page_shows_power_and_kwh(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    for watts, kwh in ((120.0, 100.2), (45.5, 100.4), (150.0, 100.9)):
        house.z2m.publish("living/tv", {"power": watts, "energy": kwh})
        time.sleep(0.3)
    log_in_by_link(page, house)
    history_requests: list[str] = []
    page.on("request", lambda r: history_requests.append(r.url) if "/api/history" in r.url else None)
    page.click('nav a[data-page="energy"]')
    bars = page.locator(".energy-days .chart.bars")
    expect(bars.locator("canvas")).to_have_count(1)
    assert page.evaluate("document.querySelector('.energy-days .chart.bars').chart.data[1].length") == 7
    expect(bars).to_have_attribute("aria-label", re.compile(r"^kWh per day: (\d\d-\d\d [\d.,]+ kWh(, )?){7}$"))
    tv = page.locator(f'article.power[data-device="{device_id("living/tv")}"]')
    expect(tv.locator(".chart.line canvas")).to_have_count(1)
    # The highest of the readings is the chart's top.
    expect(tv.locator(".chart.line")).to_have_attribute("aria-label", re.compile(r"up to 150 W"))
    table = page.locator("table.energy-table")
    expect(table).to_contain_text("living/tv")
    expect(page.locator(".energy-days")).to_contain_text("EUR")  # the price from the energy-saving profile
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # One request per meter's chart (its day and the value it starts with), not two.
    expect(page.locator("article.power .chart.line canvas")).to_have_count(page.locator("article.power").count())
    assert len(history_requests) == page.locator("article.power").count(), history_requests
    shoot(page, "09-energy")


def test_rename_a_device_and_move_it_the_name_stays_text(house: House, phone: Any, shoot: Any) -> None:
    page, problems = phone
    log_in_by_link(page, house)
    lamp_id = device_id("kitchen/light")
    tile(page, "kitchen/light").locator("button.edit").click()
    dialog = page.locator("#edit-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#edit-name-hint")).to_contain_text("kitchen/light")
    page.fill("#edit-name", XSS_NAME)
    page.fill("#edit-area", "Study")
    page.fill("#edit-tags", "reading, <b>bold</b>")
    page.click("#edit-save")
    expect(dialog).to_be_hidden()
    study = page.locator('section.area[data-area="Study"]')
    moved = study.locator(f'article.tile[data-device="{lamp_id}"]')
    expect(moved).to_be_visible()
    # The payload is shown as the text it is: no element was made of it, no script ran.
    expect(moved.locator(".device-name")).to_have_text(XSS_NAME)
    assert moved.locator("img").count() == 0
    expect(moved.locator(".tags .tag")).to_have_text(["reading", "<b>bold</b>"])
    assert moved.locator("b").count() == 0
    assert page.locator("img[src=x]").count() == 0
    expect(page.locator('section.area[data-area="kitchen"]')).not_to_contain_text(XSS_NAME)
    study.scroll_into_view_if_needed()
    shoot(page, "10-renamed", full_page=False)

    # Kept by the gateway across a restart; the page reconnects by itself.
    house.restart()
    device = house.api.device(lamp_id)
    assert device is not None
    assert (device["name"], device["area"], device["tags"]) == (XSS_NAME, "Study", ["reading", "<b>bold</b>"])
    expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
    page.reload()
    expect(page.locator(f'section.area[data-area="Study"] article.tile[data-device="{lamp_id}"] .device-name')
           ).to_have_text(XSS_NAME)
    assert problems.dialogs == []

    # "Reset all" gives the device back its own name and the config's area.
    page.locator(f'article.tile[data-device="{lamp_id}"] button.edit').click()
    page.click("#edit-reset")
    expect(page.locator(f'section.area[data-area="kitchen"] article.tile[data-device="{lamp_id}"] .device-name')
           ).to_have_text("kitchen/light")


def test_discovered_page(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, house)
    page.click('nav a[data-page="discovered"]')
    expect(page.locator("#discovered")).to_contain_text(
        re.compile("No discovery running|Nothing found yet|supported|seen only"))
    shoot(page, "11-discovered")


# -------------------------------------------------------------------- who is home, alert lifecycle


def alerts_of(house: House) -> list[dict[str, Any]]:
    status, body = house.api.call("GET", "/api/alerts")
    assert status == 200
    return body["alerts"]


def press_panic(house: House) -> str:
    """A new panic alert (any earlier one resolved first, so the press raises a fresh one): its id."""
    for alert in alerts_of(house):
        if alert["key"] == "panic" and alert["state"] != "resolved":
            assert house.api.call("POST", f"/api/alerts/{alert['id']}/resolve")[0] == 200
    before = {a["id"] for a in alerts_of(house)}
    house.z2m.publish("bedroom/panic", {"action": "single"})
    raised = wait_until(lambda: [a for a in alerts_of(house) if a["id"] not in before and a["key"] == "panic"],
                        what="the panic alert")
    return raised[0]["id"]


def alert_card(page: Any, alert_id: str) -> Any:
    return page.locator(f'article.alert[data-alert="{alert_id}"]')


def test_who_is_home_is_shown_and_follows_the_house(house: House, phone: Any, shoot: Any) -> None:
    page, problems = phone
    log_in_by_link(page, house)
    occupancy = page.locator("#occupancy")
    expect(occupancy).to_be_visible()
    # The house mode set by hand says nobody is home, and why; the page follows without a reload.
    page.select_option("#mode-select", "away")
    expect(occupancy).to_have_attribute("data-occupancy", "away")
    expect(page.locator("#occupancy-state")).to_have_text("Nobody is home")
    expect(page.locator("#occupancy-since")).to_have_text(re.compile(r"^since \d"))
    expect(page.locator("#occupancy-reason")).to_have_text("House mode set to away (by hand)")
    shoot(page, "12-nobody-home")
    # Somebody moves in the kitchen: home again, and that is the reason shown.
    try:
        house.z2m.publish("kitchen/motion", {"occupancy": True})
        expect(occupancy).to_have_attribute("data-occupancy", "home")
        expect(page.locator("#occupancy-state")).to_have_text("Somebody is home")
        expect(page.locator("#occupancy-reason")).to_have_text(re.compile(r"^Movement in kitchen/motion \(Kitchen\)"))
        # Unfolded, it shows what came before.
        page.locator("#occupancy > summary").click()
        history = page.locator("#occupancy-history li")
        expect(history.first).to_contain_text("nobody home")
        expect(history.first).to_contain_text("House mode set to away (by hand)")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shoot(page, "13-somebody-home", full_page=False)
        # A fresh page gets the same from the WebSocket's snapshot.
        page.reload()
        expect(page.locator("#conn")).to_have_text("live")
        expect(page.locator("#occupancy")).to_have_attribute("data-occupancy", "home")
        expect(page.locator("#occupancy-reason")).to_have_text(re.compile(r"^Movement in kitchen/motion"))
        expect(page.locator("#mode-select")).to_have_value("away")
    finally:
        house.z2m.publish("kitchen/motion", {"occupancy": False})
        house.api.call("PUT", "/api/mode", {"mode": "home"})
    expect(page.locator("#mode-select")).to_have_value("home")
    assert not [u for u in problems.requests if "/api/house" in u], "the UI polls instead of listening"


def test_a_late_scene_list_does_not_put_back_an_older_house_mode(house: House, phone: Any) -> None:
    # The scene list (GET /api/scenes) carries the house mode. When it arrives after the WebSocket said the mode
    # changed, the mode it carries is the older one: the selector keeps the newer.
    page, _problems = phone
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/api/scenes", hold_the_first)
    try:
        log_in_by_link(page, house)
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(100)
        assert held, "the page did not ask for the scene list"
        stale = held[0].fetch()  # the list while the mode is still "home"
        assert stale.json()["mode"] == "home"
        assert house.api.call("PUT", "/api/mode", {"mode": "away"})[0] == 200
        expect(page.locator("#mode-select")).to_have_value("away")
        held[0].fulfill(response=stale)
        expect(page.locator("#scenes h3.profile").first).to_be_attached()  # the late list was taken in
        expect(page.locator("#mode-select")).to_have_value("away")  # and nothing lists the scenes again
    finally:
        page.unroute("**/api/scenes")
        house.api.call("PUT", "/api/mode", {"mode": "home"})


def test_an_alert_acknowledged_then_resolved_with_a_note(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, house)
    page.click('nav a[data-page="alerts"]')
    alert_id = press_panic(house)
    card = alert_card(page, alert_id)
    # Open: first, marked, with both buttons.
    expect(page.locator('section.alert-group[data-group="open"]').locator(f'[data-alert="{alert_id}"]')).to_be_visible()
    expect(card).to_have_class(re.compile(r"\battention\b"))
    expect(page.locator("#alerts article.alert").first).to_have_attribute("data-alert", alert_id)
    expect(card.locator("button.ack")).to_be_visible()
    expect(card.locator("button.resolve")).to_be_visible()
    expect(card.locator(".told")).to_contain_text("Told daughter")
    card.locator("button.ack").click()
    # Acknowledged: who and when, no longer needing attention, still to be resolved.
    expect(card).to_have_attribute("data-state", "acknowledged")
    group = page.locator('section.alert-group[data-group="acknowledged"]')
    expect(group.locator(f'[data-alert="{alert_id}"]')).to_be_visible()
    expect(card.locator(".handled")).to_have_text(re.compile(r"^Acknowledged by initial at "))
    expect(card.locator("button.ack")).to_have_count(0)
    expect(page.locator("#alert-banner")).to_be_hidden()
    shoot(page, "14-alert-acknowledged")
    # Resolved by hand, saying what happened.
    card.locator("button.resolve").click()
    dialog = page.locator("#resolve-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#resolve-what")).to_contain_text("Panic button")
    expect(page.locator("#resolve-hint")).to_contain_text("Daughter")
    page.fill("#resolve-note", "False alarm: she leaned on it")
    shoot(page, "15-resolve-dialog", full_page=False)
    page.click("#resolve-save")
    expect(dialog).to_be_hidden()
    # Resolved alerts are folded away, greyed; unfolded, they say how and when they ended.
    resolved = page.locator('details.alert-group[data-group="resolved"]')
    expect(resolved).to_have_js_property("open", False)
    expect(card).to_be_hidden()
    resolved.locator("summary").click()
    expect(card).to_be_visible()
    expect(card).to_have_attribute("data-state", "resolved")
    expect(card.locator(".resolution")).to_have_text(
        re.compile(r"^Resolved at .+ by initial: False alarm: she leaned on it$"))
    expect(card.locator(".handled")).to_contain_text("Acknowledged by initial")
    expect(card.locator("button")).to_have_count(0)
    shoot(page, "16-alert-resolved")
    alert = next(a for a in alerts_of(house) if a["id"] == alert_id)
    assert (alert["state"], alert["resolved_by"], alert["resolution"]) == (
        "resolved", "token:initial", "False alarm: she leaned on it")
    assert alert["acknowledged_by"] == "token:initial"


def test_resolve_button_changes_elsewhere_and_an_unanswered_alert(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, house)
    page.click('nav a[data-page="alerts"]')
    # Acknowledged and resolved elsewhere (another phone, a notification's link): the page follows.
    alert_id = press_panic(house)
    card = alert_card(page, alert_id)
    expect(card).to_have_attribute("data-state", "open")
    assert house.api.call("POST", f"/api/alerts/{alert_id}/ack")[0] == 200
    expect(card).to_have_attribute("data-state", "acknowledged")
    assert house.api.call("POST", f"/api/alerts/{alert_id}/resolve", {"note": "she called back"})[0] == 200
    expect(card).to_have_attribute("data-state", "resolved")
    expect(card.locator(".resolution")).to_contain_text("she called back")

    # Nobody answers: the escalation goes from the daughter to the neighbour, then ends in a note.
    alert_id = press_panic(house)
    card = alert_card(page, alert_id)
    expect(card.locator(".unanswered")).to_have_text(
        re.compile(r"^Nobody answered: a last notice went to daughter and neighbour at "), timeout=15_000)
    expect(card.locator(".told")).to_contain_text("Told daughter and neighbour")
    expect(card).to_have_attribute("data-state", "open")
    shoot(page, "17-alert-unanswered")
    # Resolve straight from open; cancelling first changes nothing.
    card.locator("button.resolve").click()
    page.click("#resolve-cancel")
    expect(page.locator("#resolve-dialog")).to_be_hidden()
    assert next(a for a in alerts_of(house) if a["id"] == alert_id)["state"] == "open"
    card.locator("button.resolve").click()
    page.click("#resolve-save")
    expect(page.locator("#resolve-dialog")).to_be_hidden()
    page.locator('details.alert-group[data-group="resolved"] > summary').click()
    expect(card).to_have_attribute("data-state", "resolved")
    # No note: resolved by whom and when, nothing invented.
    expect(card.locator(".resolution")).to_have_text(re.compile(r"^Resolved at .+ by initial$"))
    expect(page.locator("#alert-banner")).to_be_hidden()
    expect(page.locator("#alert-count")).to_be_hidden()
    expect(page.locator("p.all-well")).to_have_text("Nothing needs attention. All is well.")
    alert = next(a for a in alerts_of(house) if a["id"] == alert_id)
    assert (alert["state"], alert["resolution"], alert["acknowledged_at"]) == ("resolved", "resolved by hand", None)
    assert alert["unanswered_at"] is not None


# -------------------------------------------------------------------- a UI that reads like a home (issue 18)


def test_area_shown_as_people_write_it_and_renamed(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, house)
    living = page.locator('section.area[data-area="living"]')
    heading = living.locator(".area-head h2")
    expect(heading).to_have_text("Living")  # the area `living`, as a person writes it
    # No label made of the model's names: "Current", not "Power Meter Amps"; "Online", not "Connectivity Online".
    tv = tile(page, "living/tv")
    expect(tv.locator('.reading[data-key="power_meter.watts"] dt')).to_have_text("Power")
    living.locator("button.area-edit").click()
    dialog = page.locator("#area-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#area-id")).to_have_text("living")
    page.fill("#area-name", "Living room")
    shoot(page, "30-area-rename-dialog", full_page=False)
    page.click("#area-save")
    expect(dialog).to_be_hidden()
    expect(heading).to_have_text("Living room")
    # The area itself is unchanged: profiles and config still select `living`.
    assert house.api.device(device_id("living/tv"))["area"] == "living"
    _, areas = house.api.call("GET", "/api/areas")
    living_area = next(a for a in areas["areas"] if a["id"] == "living")
    assert (living_area["name"], living_area["default_name"], living_area["edited"]) == ("Living room", "Living", True)
    living.scroll_into_view_if_needed()
    shoot(page, "31-area-renamed", full_page=False)
    # Kept across a reload; reset gives the default name back.
    page.reload()
    expect(page.locator('section.area[data-area="living"] .area-head h2')).to_have_text("Living room")
    page.locator('section.area[data-area="living"] button.area-edit').click()
    page.click("#area-reset")
    expect(page.locator('section.area[data-area="living"] .area-head h2')).to_have_text("Living")


def test_trace_told_in_sentences(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, house)
    press_panic(house)
    page.click('nav a[data-page="scenes"]')
    card = page.locator('article.scene[data-scene="elderly-monitoring.panic"]')
    expect(card).to_be_visible()
    card.get_by_role("button", name="Show runs").click()
    trace = card.locator("details.trace").first
    # The device by its name, said as a sentence; what was done, in words.
    expect(trace.locator("summary")).to_contain_text("bedroom/panic was pressed")
    trace.locator("summary").click()
    expect(trace.locator("ul.sentences")).to_contain_text("Raised the alert panic")
    card.scroll_into_view_if_needed()
    shoot(page, "32-trace-sentences", full_page=False)
    for alert in alerts_of(house):
        if alert["key"] == "panic" and alert["state"] != "resolved":
            house.api.call("POST", f"/api/alerts/{alert['id']}/resolve")


NARROW_PHONE = {"width": 360, "height": 740}


def test_every_tab_reachable_at_360_px(house: House, browser: Any, shoot: Any) -> None:
    context = browser.new_context(viewport=NARROW_PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    problems = PageProblems(page)
    try:
        log_in_by_link(page, house)
        tabs = page.locator("nav.tabs a")
        assert tabs.count() >= 5
        for index in range(tabs.count()):
            box = tabs.nth(index).bounding_box()
            # Each tab wholly on the screen, none scrolled out of sight.
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW_PHONE["width"], box
        shoot(page, "33-tabs-360px", full_page=False)
        for index in range(tabs.count()):
            link = tabs.nth(index)
            link.click()
            expect(link).to_have_attribute("aria-current", "page")
            expect(page.locator(f'#page-{link.get_attribute("data-page")}')).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW_PHONE["width"]
    finally:
        context.close()
    assert problems.errors == [] and problems.dialogs == []


# -------------------------------------------------------------------- the demo's simulated day


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Any:
    """`hearth demo` at 600x from 05:30 (a simulated hour every 6 s): breakfast, and its kettle, come within
    a minute. Its clock is simulated: the browser's clock is not the house's."""
    from tests.broker import free_port
    from tests.gateway_process import Api
    from tests.test_demo import Demo

    class NormalDayDemo(Demo):
        """tests.test_demo's demo, but a normal first day (breakfast, with the kettle); the bad morning is the next."""

        def __init__(self, data_dir: Path, port: int) -> None:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "hearth"), "demo", "--speed", "600", "--port", str(port),
                 "--data-dir", str(data_dir), "--start", "05:30", "--bad-morning-day", "1"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env=dict(os.environ, PYTHONUNBUFFERED="1", TZ="UTC"))
            self.lines = queue.Queue()
            self.output = []
            threading.Thread(target=self._read, daemon=True).start()

    port = free_port()
    process = NormalDayDemo(tmp_path_factory.mktemp("ui-demo") / "demo-data", port)
    try:
        process.wait_for(r"web UI: +(http://127\.0\.0\.1:(\d+)/)", timeout_s=30)
        token = process.wait_for(r"login token: (hth_\S+)", timeout_s=5).group(1)
        yield type("DemoHouse", (), {"url": f"http://127.0.0.1:{port}", "token": token, "api": Api(port, token)})()
    finally:
        process.stop()


def _kettle_id() -> str:
    from gateway.sim.house import demo_house

    return demo_house().device("Kettle").device_id


def _kettle_boil(demo: Any) -> tuple[float, float]:
    """When the demo's kettle switched on and off (gateway clock, epoch seconds), from its power history."""
    def boiled() -> tuple[float, float] | None:
        status, body = demo.api.call("GET", f"/api/history?device={_kettle_id()}&capability=power_meter"
                                            "&attribute=watts&since=0&limit=20000")
        rows = body.get("rows", []) if status == 200 else []
        for i, row in enumerate(rows):
            if isinstance(row["value"], (int, float)) and row["value"] >= 1000:
                after = [r for r in rows[i + 1:] if isinstance(r["value"], (int, float)) and r["value"] < 100]
                if after:
                    return row["t"], after[0]["t"]
        return None

    return wait_until(boiled, timeout_s=90, what="the demo's kettle to boil (in the store's history)")


# Reads a canvas row and finds the longest run of the power series' fill (the accent colour, translucent). The row
# is at a value off the grid lines (770 W), which would hide the fill.
_FILL_RUN_JS = """([selector, value]) => {
  const box = document.querySelector(selector);
  const u = box.chart;
  const y = Math.round(u.valToPos(value, "y", true));
  const row = u.ctx.getImageData(0, y, u.ctx.canvas.width, 1).data;
  let best = [0, 0], start = -1;
  for (let x = 0; x <= u.ctx.canvas.width; x++) {
    const i = x * 4;
    const fill = x < u.ctx.canvas.width && row[i + 3] > 0 && row[i] > 150 && row[i + 1] < 160 && row[i + 2] < 120;
    if (fill && start < 0) start = x;
    if (!fill && start >= 0) { if (x - start > best[1] - best[0]) best = [start, x]; start = -1; }
  }
  return { run: best, left: u.bbox.left, width: u.bbox.width, min: u.scales.x.min, max: u.scales.x.max };
}"""


def test_energy_chart_of_the_simulated_day_shows_the_kettle_as_a_block(demo: Any, phone: Any, shoot: Any) -> None:
    page, _ = phone
    on, off = _kettle_boil(demo)
    log_in_by_link(page, demo)
    page.click('nav a[data-page="energy"]')
    selector = f'article.power[data-device="{_kettle_id()}"] .chart.line'
    chart = page.locator(selector)
    expect(chart.locator("canvas")).to_have_count(1, timeout=15_000)
    # On the gateway's clock: the chart ends at the simulated "now", whatever the browser's clock says.
    _, energy = demo.api.call("GET", "/api/energy")
    until = float(chart.get_attribute("data-until"))
    assert abs(until - energy["now"]) < 600 * 20, (until, energy["now"])  # within 20 real seconds at 600x
    assert until - 86400 <= on < off <= until
    # Its peak is the kettle's 2 kW, at its simulated time in the house's time zone (UTC here).
    from datetime import UTC, datetime

    boil = datetime.fromtimestamp(on, UTC)
    hour12 = boil.hour % 12 or 12
    expect(chart).to_have_attribute("aria-label", re.compile(
        rf"up to [12](?:[.,]\d+)? kW \(at (?:0?{hour12}:{boil.minute:02d}|{boil.hour:02d}:{boil.minute:02d})"))
    expect(page.locator(".energy-days .chart.bars canvas")).to_have_count(1)
    expect(page.locator(".energy-days .u-legend")).to_contain_text("kWh")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    chart.scroll_into_view_if_needed()
    shoot(page, "34-energy-simulated-day", full_page=False)

    # The whole day: the kettle's few minutes are a sliver at its time, not a plateau of hours.
    day = page.evaluate(_FILL_RUN_JS, [selector, 770])
    px_per_s = day["width"] / (day["max"] - day["min"])
    assert day["run"][1] - day["run"][0] <= (off - on) * px_per_s + 4, day
    expected_start = day["left"] + (on - day["min"]) * px_per_s
    assert abs(day["run"][0] - expected_start) <= 4, (day, expected_start)

    # Zoomed to the hour around it: a block exactly as wide as the boil, where the boil was.
    page.evaluate("([s, lo, hi]) => document.querySelector(s).chart.setScale('x', {min: lo, max: hi})",
                  [selector, on - 1800, off + 1800])
    zoom = page.evaluate(_FILL_RUN_JS, [selector, 770])
    assert (zoom["min"], zoom["max"]) == (pytest.approx(on - 1800), pytest.approx(off + 1800)), zoom
    px_per_s = zoom["width"] / (zoom["max"] - zoom["min"])
    width = zoom["run"][1] - zoom["run"][0]
    # Within the line's width (1.5 CSS px at 2 device px each, on both edges) of the boil's own width.
    assert abs(width - (off - on) * px_per_s) <= 6, (zoom, off - on)
    assert abs(zoom["run"][0] - (zoom["left"] + (on - zoom["min"]) * px_per_s)) <= 4, zoom
    assert width > 10 * 2  # a block, not a line: ~3 min on an hour's width
    shoot(page, "35-energy-kettle-zoomed", full_page=False)

    # The kWh table on a phone: the device names stay in view while the days scroll.
    table = page.locator("table.energy-table")
    table.scroll_into_view_if_needed()
    expect(table.locator("tbody th").first).to_have_css("position", "sticky")
    shoot(page, "36-energy-table-phone", full_page=False)


def test_demo_reads_like_a_home(demo: Any, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, demo)
    expect(page.locator('section.area[data-area="living_room"] .area-head h2')).to_have_text("Living room")
    # The BLE thermometers advertise only their firmware's name (ATC_…): called by what they are.
    bedroom = page.locator('section.area[data-area="bedroom"]')
    expect(bedroom.locator(".device-name").filter(has_text="Bedroom thermometer")).to_have_count(1)
    expect(page.locator(".device-name").filter(has_text=re.compile(r"^ATC_"))).to_have_count(0)
    shoot(page, "37-demo-house")
    # mDNS is off in the demo, and the Discovered page says so.
    page.click('nav a[data-page="discovered"]')
    expect(page.locator("#discovered .mdns-off")).to_contain_text("mDNS discovery is off")
    shoot(page, "38-discovered-mdns-off", full_page=False)
