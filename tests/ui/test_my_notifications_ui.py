"""A caregiver's own notification settings in the browser (issue 18): the owner links her account to the
contact she is (Access), she sets her quiet hours in "My notifications", and they hold after a reload; the
dialog has no accessibility violation (axe-core), at a phone's size, a desktop's and in the dark."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import House, axe_violations, describe_violations
from tests.ui.test_login_roles import expect, log_in

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

NURSE = ("nora", "nurse password 1")


def test_a_caregiver_sets_her_quiet_hours_once_the_owner_linked_her(house: House, a11y_page: Any,
                                                                     shoot: Any) -> None:
    page, _ = a11y_page
    status, body = house.api.call("POST", "/api/users", {"username": NURSE[0], "password": NURSE[1],
                                                         "role": "caregiver"})
    assert status in (201, 409), body
    house.api.call("PATCH", f"/api/users/{NURSE[0]}", {"contact": None})  # as the other sizes left it: unlinked
    # The owner links her to the contact she is, in the Access dialog.
    log_in(page, house, house.username, house.password)
    page.click("#access-open")
    picker = page.locator(f'#access-users li[data-user="{NURSE[0]}"] select.access-contact')
    expect(picker).to_be_visible()
    picker.select_option("carer")
    expect(page.locator("#access-error")).to_contain_text("carer")
    page.click("#access-close")
    page.click("#logout")

    log_in(page, house, *NURSE)
    page.click("#mynotify-open")
    expect(page.locator("#mynotify-contact")).to_contain_text("carer")
    expect(page.locator("#mynotify-channels")).to_contain_text("json#1")
    assert describe_violations(axe_violations(page)) == ""
    page.check("#mynotify-quiet-on")
    page.fill("#mynotify-quiet-from", "21:30")
    page.fill("#mynotify-quiet-to", "06:45")
    page.click('#mynotify-form button[type="submit"]')
    expect(page.locator("#mynotify-status")).to_have_text("Saved.")
    shoot(page, "my-notifications-saved")
    page.reload()
    expect(page.locator("#app")).to_be_visible()
    page.click("#mynotify-open")
    expect(page.locator("#mynotify-quiet-on")).to_be_checked()
    expect(page.locator("#mynotify-quiet-from")).to_have_value("21:30")
    expect(page.locator("#mynotify-quiet-to")).to_have_value("06:45")
    # The house's settings again.
    page.click("#mynotify-reset")
    expect(page.locator("#mynotify-quiet-on")).not_to_be_checked()
