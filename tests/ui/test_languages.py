"""The UI in the reader's language, in a real browser: a caregiver who chose Simplified Chinese sees the
navigation in Chinese and can switch back; the resident whose family set Chinese for her sees her page in
Chinese with the date written the Chinese way; a browser that prefers Chinese gets the login in Chinese."""

# Chinese text is written with Chinese punctuation, on purpose:
# ruff: noqa: RUF001
from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ui.conftest import TABLET, House, PageProblems
from tests.ui.test_web_ui import press_panic

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

MEI = ("mei", "mei password 1")
NAI_NAI = ("nai-nai", "nai-nai password 1")
# "12月6日星期日": Intl's long Chinese date with its weekday.
CHINESE_DATE = re.compile(r"^\d{1,2}月\d{1,2}日星期[一二三四五六日]$")


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def add_user(house: House, name: str, password: str, role: str, language: str) -> None:
    status, body = house.api.call("POST", "/api/users", {"username": name, "password": password, "role": role})
    assert status in (201, 409), body
    status, body = house.api.call("PATCH", f"/api/users/{name}", {"language": language})
    assert status == 200 and body["language"] == language, body


def test_a_caregiver_reading_chinese_sees_the_navigation_in_chinese(house: House, phone: Any, shoot: Any) -> None:
    page, _ = phone
    add_user(house, *MEI, "caregiver", "zh-Hans")
    page.goto(house.url + "/")
    page.fill("#login-username", MEI[0])
    page.fill("#login-password", MEI[1])
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.locator('nav a[data-page="house"]')).to_have_text("家")
    expect(page.locator('nav a[data-page="alerts"] [data-i18n]')).to_have_text("警报")
    expect(page.locator('nav a[data-page="energy"]')).to_have_text("能耗")
    expect(page.locator("#logout")).to_have_text("退出登录")
    expect(page.locator("#conn")).to_have_text("已连接")
    expect(page.locator("#language-select")).to_have_value("zh-Hans")
    page.click('nav a[data-page="alerts"]')
    expect(page.locator("#page-alerts h2")).to_have_text("警报")
    # An alert reads in Chinese: its group, its buttons, when it was raised (the profile's own title and
    # message stay as the installer wrote them).
    alert_id = press_panic(house)
    card = page.locator(f'article.alert[data-alert="{alert_id}"]')
    expect(card.locator("button.ack")).to_have_text("确认")
    expect(card.locator(".raised")).to_contain_text("发出于")
    expect(page.locator('section.alert-group.open > h3')).to_have_text("需要处理")
    card.locator("button.ack").click()
    expect(card.locator(".handled")).to_contain_text("已由 mei 于")
    shoot(page, "language-zh-caregiver")
    # She switches to English in the menu: the page follows at once, and the choice is kept.
    page.select_option("#language-select", "en")
    expect(page.locator('nav a[data-page="house"]')).to_have_text("House")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    _, users = house.api.call("GET", "/api/users")
    assert next(u for u in users["users"] if u["name"] == MEI[0])["language"] == "en"
    page.select_option("#language-select", "zh-Hans")
    expect(page.locator('nav a[data-page="house"]')).to_have_text("家")


def test_the_residents_page_in_chinese_with_a_chinese_date(house: House, browser: Any, shoot: Any) -> None:
    add_user(house, *NAI_NAI, "resident", "zh-Hans")
    # An English tablet: her own language wins over the browser's.
    context = browser.new_context(viewport=TABLET, device_scale_factor=1, is_mobile=True, has_touch=True,
                                  locale="en-GB")
    page = context.new_page()
    problems = PageProblems(page)
    try:
        page.goto(house.url + "/resident")
        expect(page.locator("#setup")).to_be_visible()
        page.fill("#setup-name", NAI_NAI[0])
        page.fill("#setup-token", NAI_NAI[1])
        page.click("#setup-submit")
        expect(page.locator("#resident")).to_be_visible()
        expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
        expect(page.locator("#fine")).to_have_text("我很好")
        expect(page.locator("#help")).to_have_text("呼叫帮助")
        expect(page.locator("#reminders-title")).to_have_text("今天")
        expect(page.locator("#told-title")).to_have_text("已通知谁")
        expect(page.locator("#today")).to_have_text(CHINESE_DATE)
        expect(page).to_have_title("Hearth – 我的家")
        # The reminders the gateway writes for her are in Chinese too ("09:30 前 起床活动").
        reminders = page.locator("#reminders li")
        if reminders.count():
            expect(reminders.first).not_to_contain_text(re.compile(r"\bby\b|Be up"))
        page.click("#fine")
        expect(page.locator("#status")).to_contain_text("谢谢")
        page.click("#help")
        expect(page.locator("#help")).to_have_text("再点一下呼叫")
        page.click("#help-cancel")
        expect(page.locator("#status")).to_have_text("未呼叫。")
        shoot(page, "language-zh-resident")
    finally:
        context.close()
    assert problems.errors == [] and problems.dialogs == []


def test_a_browser_that_prefers_chinese_gets_the_login_in_chinese(house: House, browser: Any) -> None:
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    problems = PageProblems(page)
    try:
        page.goto(house.url + "/")
        expect(page.locator("#login-form")).to_be_visible()
        expect(page.locator("#login-submit")).to_have_text("登录")
        expect(page.locator('label[for="login-password"]')).to_have_text("密码")
    finally:
        context.close()
    assert problems.errors == [] and problems.dialogs == []
