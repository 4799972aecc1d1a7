"""Logging in per role in the browser: a caregiver sees the house and the alerts but no settings, the owner
manages who gets in (tokens and people), logging out ends the session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway_process import Api, wait_until
from tests.ui.conftest import House
from tests.ui.test_web_ui import alerts_of, press_panic

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

CARER = ("carl", "carer password 1")


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def log_in(page: Any, house: House, username: str, password: str) -> None:
    page.goto(house.url + "/")
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("live")


def test_a_caregiver_sees_the_house_and_alerts_but_no_settings(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    status, body = house.api.call("POST", "/api/users", {"username": CARER[0], "password": CARER[1],
                                                         "role": "caregiver"})
    assert status in (201, 409), body
    log_in(page, house, *CARER)
    expect(page.locator("#whoami")).to_have_text("carl (caregiver)")
    expect(page.locator("article.tile").first).to_be_visible()
    expect(page.locator('nav a[data-page="alerts"]')).to_be_visible()
    expect(page.locator('nav a[data-page="discovered"]')).to_be_hidden()
    expect(page.locator("#mode-select")).to_be_disabled()
    expect(page.locator("#access-open")).to_be_hidden()
    shoot(page, "roles-caregiver")
    # The server refuses the setting anyway, whatever the page shows.
    answer = page.evaluate("""async () => {
        const r = await window.HearthSession.fetch("/api/mode", { method: "PUT",
            headers: { "Content-Type": "application/json" }, body: JSON.stringify({ mode: "away" }) });
        return [r.status, (await r.json()).reason];
    }""")
    assert answer == [403, "forbidden_role"]
    # She acknowledges an alert: it records her name.
    alert_id = press_panic(house)
    page.click('nav a[data-page="alerts"]')
    card = page.locator(f'article.alert[data-alert="{alert_id}"]')
    card.locator("button.ack").click()
    wait_until(lambda: next(a for a in alerts_of(house) if a["id"] == alert_id).get("acknowledged_by")
               == "token:carl", what="the acknowledgement by carl")
    shoot(page, "roles-caregiver-acknowledged")
    # Without the CSRF header the same request is refused before the role is even looked at.
    answer = page.evaluate("""async () => (await fetch("/api/alerts/x/ack", { method: "POST",
        credentials: "same-origin" })).status""")
    assert answer == 403


def test_the_owner_makes_and_revokes_a_token_and_logs_out(house: House, desktop: Any, shoot: Any) -> None:
    page, _ = desktop
    log_in(page, house, house.username, house.password)
    expect(page.locator("#whoami")).to_have_text(f"{house.username} (owner)")
    page.click("#access-open")
    expect(page.locator("#access-dialog")).to_be_visible()
    page.fill("#token-name", "kiosk")
    page.select_option("#token-role", "caregiver")
    page.click('#token-form button[type="submit"]')
    expect(page.locator("#access-new-token")).to_be_visible()
    token = page.locator("#access-new-token-value").inner_text()
    assert token.startswith("hth_")
    row = page.locator("#access-tokens li", has_text="kiosk")
    expect(row).to_contain_text("caregiver")
    shoot(page, "roles-owner-access")
    as_kiosk = Api(int(house.url.rsplit(":", 1)[1]), token)
    assert as_kiosk.call("GET", "/api/alerts")[0] == 200
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    assert as_kiosk.call("GET", "/api/alerts")[0] == 401
    page.click("#access-close")
    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.evaluate("async () => (await fetch('/api/me')).status") == 401


def test_first_start_offers_to_create_the_owner_on_this_machine(tmp_path: Any, browser: Any) -> None:
    from tests.broker import free_port
    from tests.gateway_process import GatewayProcess

    port = free_port()
    config = tmp_path / "fresh.toml"
    config.write_text(f"[mqtt]\nenabled = false\n\n[api]\nport = {port}\n")
    gateway = GatewayProcess(config, tmp_path / "data")
    gateway.start()
    try:
        assert "hearth user add NAME --role owner" in gateway.log_text()
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#setup-form")).to_be_visible()
        page.fill("#setup-username", "olga")
        page.fill("#setup-password", "a long password")
        page.fill("#setup-password2", "a different one")
        page.click("#setup-submit")
        expect(page.locator("#setup-error")).to_contain_text("differ")
        page.fill("#setup-password2", "a long password")
        page.click("#setup-submit")
        expect(page.locator("#app")).to_be_visible()
        expect(page.locator("#whoami")).to_have_text("olga (owner)")
        context.close()
        # Once there is an owner, nobody is offered it again (the API refuses it too).
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#login-form")).to_be_visible()
        expect(page.locator("#setup-form")).to_be_hidden()
        context.close()
    finally:
        gateway.stop()
