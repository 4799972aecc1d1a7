"""Issue 17's capabilities in the web UI, in a real browser against a real gateway: a gas detector alarming, a
siren switched on from its tile, a three-phase meter's phases (and the sum of them where the meter has no total),
a filter to replace, a fan's speed in steps, a tank's level, a plant's soil, a radiator's open window.

The devices are real Zigbee2MQTT definitions (tests/fixtures/z2m/zhc_exposes.json, zigbee-herdsman-converters),
announced by the fake bridge beside the test house's own; one of them is composed from a real one (see METER_NO_TOTAL).
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_process import wait_until
from tests.scenes.house import bridge_devices
from tests.ui.conftest import PHONE, House
from tests.ui.test_web_ui import expect, log_in_by_link

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

MODELS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "z2m" / "zhc_exposes.json").read_text())["models"]

# The Ourtop 3-phase meter without its `power` (the total): a meter that reports only its phases. Composed
# from the real definition; the UI must show the device's power as the sum of the phases.
METER_NO_TOTAL = "ATMS10013Z3 (phases only)"

# friendly name: (model, area, battery powered)
EXTRA: dict[str, tuple[str, str, bool]] = {
    "kitchen/gas": ("DCR-RQJ", "kitchen", False),  # Tuya gas and CO detector
    "hall/siren": ("MG-BJQ002", "hall", False),  # Moes siren: its alarm is a word (the tone) or off
    "utility/meter": ("ATMS10013Z3", "utility", False),  # Ourtop 3-phase meter: power total and power_a/b/c
    "utility/heat pump": (METER_NO_TOTAL, "utility", False),
    "bedroom/purifier": ("E2007", "bedroom", False),  # IKEA STARKVIND: fan with 9 speeds, filter
    "garden/tank": ("ME201WZ", "garden", False),  # Tuya tank level
    "garden/plant": ("3RSM0147Z", "garden", True),  # Third Reality soil moisture
    "bedroom/valve": ("ZTRV-S01", "bedroom", True),  # Moes radiator valve with window detection
}


def _exposes(model: str) -> list[dict[str, Any]]:
    if model == METER_NO_TOTAL:
        return [e for e in copy.deepcopy(MODELS["ATMS10013Z3"]["exposes"]) if e.get("name") != "power"]
    return copy.deepcopy(MODELS[model]["exposes"])


def ieee(name: str) -> str:
    return f"0x00124b00ff{list(EXTRA).index(name) + 1:06x}"


def extra_id(name: str) -> str:
    return f"zigbee2mqtt:{ieee(name)}"


def extra_devices() -> list[dict[str, Any]]:
    out = []
    for name, (model, _area, battery) in EXTRA.items():
        real = model.split(" ")[0]
        out.append({
            "friendly_name": name, "ieee_address": ieee(name), "type": "EndDevice" if battery else "Router",
            "power_source": "Battery" if battery else "Mains (single phase)", "disabled": False,
            "interview_completed": True, "interviewing": False, "supported": True,
            "definition": {"model": real, "vendor": MODELS[real]["vendor"], "description": model,
                           "exposes": _exposes(model)},
        })
    return out


@pytest.fixture(scope="module")
def home(house: House) -> Iterator[House]:
    """The test house with the issue-17 devices added, in their areas, with a first state each."""
    house.z2m.announce(bridge_devices() + extra_devices())
    for name in EXTRA:
        wait_until(lambda n=name: house.api.device(extra_id(n)), what=f"{name} in the API")
    for name, (_model, area, _battery) in EXTRA.items():
        status, _ = house.api.call("PATCH", f"/api/devices/{extra_id(name)}", {"area": area})
        assert status == 200
    first = {
        "kitchen/gas": {"gas": False, "gas_value": 0, "carbon_monoxide": False, "co": 0},
        "hall/siren": {"alarm": "off", "duration": 30, "volume": "high"},
        "utility/meter": {"power": 300, "power_a": 100, "power_b": 120, "power_c": 80, "voltage_a": 230.1,
                          "voltage_b": 229.4, "voltage_c": 231.0, "energy": 1234.5},
        "utility/heat pump": {"power_a": 100, "power_b": 120, "power_c": 80, "energy": 50.0},
        "bedroom/purifier": {"fan_state": "ON", "fan_mode": "5", "fan_speed": 5, "pm25": 8, "replace_filter": False,
                             "filter_age": 60},
        "garden/tank": {"liquid_level_percent": 80, "liquid_depth": 1.2, "liquid_state": "normal"},
        "garden/plant": {"soil_moisture": 41, "temperature": 18.5, "battery": 90},
        "bedroom/valve": {"local_temperature": 19.0, "current_heating_setpoint": 21, "window": "CLOSED",
                          "battery": 70},
    }
    for name, payload in first.items():
        house.z2m.publish(name, payload)
    wait_until(lambda: ((house.api.device(extra_id("bedroom/valve")) or {}).get("components", {}).get("main", {})
                        .get("thermostat", {}).get("window_open") is False), what="the first states")
    yield house


def tile(page: Any, name: str) -> Any:
    return page.locator(f'article.tile[data-device="{extra_id(name)}"]')


def reading(tile_: Any, key: str, component: str = "main") -> Any:
    return tile_.locator(f'.component[data-component="{component}"] .reading[data-key="{key}"]')


def drain(house: House) -> None:
    while not house.z2m.sets.empty():
        house.z2m.sets.get_nowait()


def fits_the_phone(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_gas_detector_alarming(home: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, home)
    gas = tile(page, "kitchen/gas")
    detected = reading(gas, "gas.detected")
    expect(detected.locator("dt")).to_have_text("Gas")
    expect(detected.locator("dd")).to_have_text("no gas")
    expect(detected).not_to_have_class(re.compile(r"\bbad\b"))
    home.z2m.publish("kitchen/gas", {"gas": True, "gas_value": 12, "carbon_monoxide": False, "co": 3})
    # Shown as the leak and smoke alarms are: in words, in red; the level in % of the lower explosive limit.
    expect(detected.locator("dd")).to_have_text("GAS")
    expect(detected).to_have_class(re.compile(r"\bbad\b"))
    expect(reading(gas, "gas.lel_percent").locator("dd")).to_have_text("12 % LEL")
    expect(reading(gas, "gas.lel_percent").locator("dt")).to_have_text("Gas level")
    expect(reading(gas, "smoke_co_alarm.co_ppm").locator("dd")).to_have_text("3 ppm")
    expect(reading(gas, "smoke_co_alarm.co").locator("dd")).to_have_text("no CO")
    fits_the_phone(page)
    gas.scroll_into_view_if_needed()
    shoot(page, "20-gas-detected", full_page=False)
    home.z2m.publish("kitchen/gas", {"gas": False, "gas_value": 0})
    expect(detected.locator("dd")).to_have_text("no gas")
    expect(detected).not_to_have_class(re.compile(r"\bbad\b"))


def test_a_siren_turned_on_from_its_tile(home: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, home)
    siren = tile(page, "hall/siren")
    switch = siren.get_by_role("switch", name="hall/siren Siren")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_have_text("Silent")
    drain(home)
    switch.click()
    # The command reaches the device (its first tone: the adapter's choice when none is asked for), and the
    # tile follows the device's own report of it, with the tone it sounds.
    assert home.z2m.sets.get(timeout=5) == ("hall/siren", {"alarm": "sound"})
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch).to_have_text("Sounding")
    expect(reading(siren, "siren.tone").locator("dd")).to_have_text("sound")
    expect(reading(siren, "siren.on")).to_have_count(0)  # the switch says it
    device = home.api.device(extra_id("hall/siren"))
    assert device is not None and device["components"]["main"]["siren"]["on"] is True
    siren.scroll_into_view_if_needed()
    shoot(page, "21-siren-sounding", full_page=False)
    # Another tone, set at the device: the tile says which.
    home.z2m.publish("hall/siren", {"alarm": "sound_light"})
    expect(reading(siren, "siren.tone").locator("dd")).to_have_text("sound_light")
    switch.click()
    assert home.z2m.sets.get(timeout=5) == ("hall/siren", {"alarm": "off"})
    expect(switch).to_have_attribute("aria-checked", "false")


def test_a_three_phase_meter_shows_each_phase(home: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, home)
    meter = tile(page, "utility/meter")
    # Its own total, then each phase under it (power_a … are phases L1, L2, L3).
    expect(reading(meter, "power_meter.watts").locator("dd")).to_have_text("300 W")
    expect(meter.locator(".component-name")).to_have_text(["main", "Phase L1", "Phase L2", "Phase L3"])
    for phase, watts, volts in (("l1", "100 W", "230.1 V"), ("l2", "120 W", "229.4 V"), ("l3", "80 W", "231 V")):
        expect(reading(meter, "power_meter.watts", phase).locator("dd")).to_have_text(watts)
        expect(reading(meter, "power_meter.volts", phase).locator("dd")).to_have_text(volts)
    # A meter with a total is not summed again.
    expect(meter.locator('.reading[data-key="power_meter.total_watts"]')).to_have_count(0)
    # A meter that reports only its phases: its power is their sum.
    pump = tile(page, "utility/heat pump")
    total = pump.locator('.readings.total .reading[data-key="power_meter.total_watts"]')
    expect(total.locator("dd")).to_have_text("300 W")
    expect(total.locator("dd")).to_have_attribute("title", "the sum of phases L1, L2 and L3")
    home.z2m.publish("utility/heat pump", {"power_a": 150})
    expect(total.locator("dd")).to_have_text("350 W")
    expect(reading(pump, "power_meter.watts", "l1").locator("dd")).to_have_text("150 W")
    fits_the_phone(page)
    meter.scroll_into_view_if_needed()
    shoot(page, "22-three-phase-meter", full_page=False)
    # The energy page charts each device once: the meter's total, the heat pump's sum of phases.
    time.sleep(0.6)  # the store commits every 0.5 s
    page.click('nav a[data-page="energy"]')
    pump_chart = page.locator(f'article.power[data-device="{extra_id("utility/heat pump")}"]')
    expect(pump_chart.locator(".sum")).to_have_text("Sum of phases L1, L2 and L3")
    # The highest sum (150 + 120 + 80), not the highest phase: the phases are added, not drawn over each other.
    expect(pump_chart.locator(".chart.line")).to_have_attribute("aria-label", re.compile(r"up to 350 W \("))
    meter_chart = page.locator(f'article.power[data-device="{extra_id("utility/meter")}"]')
    expect(meter_chart.locator(".chart.line")).to_have_attribute("aria-label", re.compile(r"up to 300 W \("))
    expect(meter_chart.locator(".sum")).to_have_count(0)
    fits_the_phone(page)
    pump_chart.scroll_into_view_if_needed()
    shoot(page, "23-energy-phases", full_page=False)


def test_a_filter_needing_replacement(home: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, home)
    purifier = tile(page, "bedroom/purifier")
    replace = reading(purifier, "filter.replace")
    expect(replace.locator("dd")).to_have_text("ok")
    expect(replace).not_to_have_class(re.compile(r"\bbad\b"))
    home.z2m.publish("bedroom/purifier", {"replace_filter": True, "filter_age": 259200})  # minutes: 180 days
    expect(replace.locator("dt")).to_have_text("Filter")
    expect(replace.locator("dd")).to_have_text("replace now")
    expect(replace).to_have_class(re.compile(r"\bbad\b"))
    expect(reading(purifier, "filter.used_h").locator("dd")).to_have_text("4,320 h")
    purifier.scroll_into_view_if_needed()
    shoot(page, "24-filter-replace", full_page=False)
    home.z2m.publish("bedroom/purifier", {"replace_filter": False, "filter_age": 0})
    expect(replace.locator("dd")).to_have_text("ok")


def test_a_fans_speed_in_steps(home: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    log_in_by_link(page, home)
    purifier = tile(page, "bedroom/purifier")
    fan = purifier.get_by_role("group", name="bedroom/purifier fan speed")
    # Speed 5 of the purifier's 9 (it reports 56 %), the fifth button pressed; Off is a speed too (no switch).
    expect(fan.locator("output.fan-speed")).to_have_text("5 of 9")
    expect(fan.get_by_role("button", name="Fan speed 5 of 9")).to_have_attribute("aria-pressed", "true")
    expect(fan.locator("button.step")).to_have_count(10)
    expect(fan.locator('button.step[aria-pressed="true"]')).to_have_count(1)
    expect(reading(purifier, "fan.speed_percent")).to_have_count(0)  # the control says it
    expect(reading(purifier, "fan.speed_steps")).to_have_count(0)
    drain(home)
    fan.get_by_role("button", name="Fan speed 3 of 9").click()
    assert home.z2m.sets.get(timeout=5) == ("bedroom/purifier", {"fan_mode": "3"})
    expect(fan.locator("output.fan-speed")).to_have_text("3 of 9")
    expect(fan.get_by_role("button", name="Fan speed 3 of 9")).to_have_attribute("aria-pressed", "true")
    fan.get_by_role("button", name="Fan off").click()
    assert home.z2m.sets.get(timeout=5) == ("bedroom/purifier", {"fan_mode": "off"})
    expect(fan.locator("output.fan-speed")).to_have_text("off")
    expect(fan.get_by_role("button", name="Fan off")).to_have_attribute("aria-pressed", "true")
    fits_the_phone(page)
    fan.get_by_role("button", name="Fan speed 9 of 9").click()
    expect(fan.locator("output.fan-speed")).to_have_text("9 of 9")
    purifier.scroll_into_view_if_needed()
    shoot(page, "25-fan-speed", full_page=False)


def test_tank_soil_and_an_open_window_are_labelled(home: House, desktop: Any, shoot: Any) -> None:
    page, _ = desktop
    log_in_by_link(page, home)
    tank = tile(page, "garden/tank")
    expect(reading(tank, "water_level.percent").locator("dt")).to_have_text("Tank level")
    expect(reading(tank, "water_level.percent").locator("dd")).to_have_text("80 %")
    expect(reading(tank, "water_level.depth_m").locator("dd")).to_have_text("1.2 m")
    state = reading(tank, "water_level.state")
    expect(state.locator("dd")).to_have_text("normal")
    expect(state).not_to_have_class(re.compile(r"\bbad\b"))
    home.z2m.publish("garden/tank", {"liquid_level_percent": 98, "liquid_state": "high"})
    expect(state.locator("dd")).to_have_text("high")
    expect(state).to_have_class(re.compile(r"\bbad\b"))
    plant = tile(page, "garden/plant")
    expect(reading(plant, "soil_moisture.percent").locator("dt")).to_have_text("Soil moisture")
    expect(reading(plant, "soil_moisture.percent").locator("dd")).to_have_text("41 %")
    valve = tile(page, "bedroom/valve")
    window = reading(valve, "thermostat.window_open")
    expect(window.locator("dd")).to_have_text("closed")
    home.z2m.publish("bedroom/valve", {"window": "OPENED"})
    # Worth knowing, not an alarm: amber, not red.
    expect(window.locator("dd")).to_have_text("open, heating paused")
    expect(window).to_have_class(re.compile(r"\bnote\b"))
    expect(window).not_to_have_class(re.compile(r"\bbad\b"))
    shoot(page, "26-new-capabilities-desktop")
    home.z2m.publish("bedroom/valve", {"window": "CLOSED"})
    home.z2m.publish("garden/tank", {"liquid_level_percent": 80, "liquid_state": "normal"})


def test_the_new_capabilities_in_chinese(home: House, browser: Any, shoot: Any) -> None:
    """The same tiles for a browser that prefers Chinese (an API token's session follows the browser): every
    label, value word and control in Chinese, no English left but names, units and ids."""
    from tests.ui.test_roles_in_languages import VISIBLE_TEXT_JS, data_strings, english_left

    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{home.url}/#token={home.token}")
        expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
        expect(page.locator("#conn")).to_have_text("已连接")
        expect(tile(page, "garden/tank")).to_be_visible()
        expect(tile(page, "hall/siren").get_by_role("switch")).to_have_text(re.compile("静音|正在鸣响"))
        expect(reading(tile(page, "bedroom/purifier"), "filter.replace").locator("dt")).to_have_text("滤芯")
        expect(reading(tile(page, "garden/tank"), "water_level.state").locator("dd")).to_have_text(
            re.compile("正常|偏高|偏低"))
        left = english_left(page.evaluate(VISIBLE_TEXT_JS), data_strings(home))
        assert not left, f"English left on the house page in Chinese: {left}"
        shoot(page, "27-new-capabilities-chinese")
        page.goto(f"{home.url}/#/energy")
        expect(page.locator("#energy article.power .chart").first).to_be_visible()
        expect(page.locator(f'article.power[data-device="{extra_id("utility/heat pump")}"] .sum')).to_have_text(
            "L1、L2和L3 相之和")
        left = english_left(page.evaluate(VISIBLE_TEXT_JS), data_strings(home))
        assert not left, f"English left on the energy page in Chinese: {left}"
    finally:
        context.close()
