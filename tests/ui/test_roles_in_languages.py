"""Every role in every language, in a real browser: the owner, a caregiver, an installer and a resident, each
reading English and each reading Simplified Chinese, log in and visit every page their role may see. Each page
is in their language (the ``lang`` attribute, known texts, and -- in Chinese -- no English word left outside
names, units and ids), offers nothing their role may not do (no settings for a caregiver, no Access for an
installer, only the resident's own page for a resident), and passes axe-core (WCAG 2.1 A/AA).

One gateway for the whole module (conftest's ``house``); each person's browser prefers the other language, so
what shows is their own choice (``PATCH /api/users/{name}``), not the browser's."""

# Chinese text is written with Chinese punctuation, on purpose:
# ruff: noqa: RUF001
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.i18n import CATALOGUE_DIR
from tests.gateway_process import wait_until
from tests.ui.conftest import DESKTOP, House, PageProblems, axe_violations, describe_violations

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

ROLES = ("owner", "caregiver", "installer", "resident")
LANGUAGES = ("en", "zh-Hans")
# The pages of the main UI each role may see (app.js ROLE_PAGES; the resident has only /resident).
PAGES = {
    "owner": ("house", "alerts", "scenes", "energy", "discovered"),
    "caregiver": ("house", "alerts", "scenes", "energy"),
    "installer": ("house", "scenes", "energy", "discovered"),
    "resident": (),
}
ALL_PAGES = PAGES["owner"]
# The browser each person uses prefers the other language: their own choice must win.
BROWSER_LOCALE = {"en": "zh-CN", "zh-Hans": "en-GB"}
PASSWORD = "a long enough password"

# Latin words a Chinese page may show: the product's name, protocol and brand names, the language picker's
# own name for English. Units (kWh, °C, ppm …) are under four letters.
ALLOWED_WORDS = frozenset({"Hearth", "mDNS", "Shelly", "ESPHome", "English",
                           # the Matter standard and the controllers' product names are the same in every language
                           "Matter", "Apple", "Alexa", "SmartThings"})
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]{3,}")
# What a catalogue key looks like on a page where its text was missing ("house.no_area").
KEY_LIKE = re.compile(r"\b[a-z_]+\.[a-z_]+(?:\.[a-z_]+)*\b")


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def words(language: str) -> dict[str, str]:
    return dict(json.loads((CATALOGUE_DIR / f"{language}.json").read_text(encoding="utf-8")))


# ------------------------------------------------------------------ the page's text

# Every piece of text a person can see or hear on the page as it is now: the visible text nodes, the
# visible elements' aria-label, title, placeholder and alt, and the document's title. Skipped: what is not
# the page's to translate (translate="no": names, models, ids, the profile's own alert texts), code, and the
# chart's canvas (drawn, not text).
VISIBLE_TEXT_JS = r"""() => {
    const out = [document.title];
    const skipped = (el) => el.closest('[translate="no"], code, script, style, noscript, template');
    const seen = (el) => el.checkVisibility({ visibilityProperty: true });
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        const text = node.textContent.trim();
        if (!text || !parent || skipped(parent)) continue;
        // An option's visibility is its select's.
        const shown = parent.closest("option") ? seen(parent.closest("select")) && parent.closest("option").selected
            : seen(parent);
        if (shown) out.push(text);
    }
    for (const el of document.body.querySelectorAll("[aria-label], [title], [placeholder], [alt]")) {
        if (skipped(el) || !seen(el)) continue;
        for (const name of ["aria-label", "title", "placeholder", "alt"]) {
            const value = el.getAttribute(name);
            if (value) out.push(value);
        }
    }
    return out;
}"""


def data_strings(house: House) -> list[str]:
    """The gateway's data a page may put inside a sentence: names of devices, areas, people, contacts,
    scenes, alert texts, the time zone; longest first, so that "living/tv" goes before "living"."""
    found: set[str] = {"config.toml", "hearth demo", "[adapters.mdns] enabled = true", "[mdns] enabled = true",
                       "Google Home"}
    _, devices = house.api.call("GET", "/api/devices")
    for device in devices["devices"] if isinstance(devices, dict) else devices:
        found.update(str(device.get(k) or "") for k in ("id", "name", "area", "model", "manufacturer", "source"))
        found.update(device.get("components", {}))
        found.update(device.get("tags") or ())
    _, areas = house.api.call("GET", "/api/areas")
    found.update(str(a.get(k) or "") for a in areas["areas"] for k in ("id", "name"))
    _, users = house.api.call("GET", "/api/users")
    found.update(u["name"] for u in users["users"])
    _, tokens = house.api.call("GET", "/api/tokens")
    found.update(t["name"] for t in tokens["tokens"])
    _, alerts = house.api.call("GET", "/api/alerts")
    for alert in alerts["alerts"]:
        found.update(str(alert.get(k) or "") for k in ("title", "message", "resolution", "key", "area"))
        found.update((alert.get("policy") or {}).get("contacts") or ())
        found.update(n.get("target", "") for n in alert.get("notifications") or ())
    _, scenes = house.api.call("GET", "/api/scenes")
    found.update(str(s.get(k) or "") for s in scenes["scenes"] for k in ("id", "name", "profile", "description"))
    _, energy = house.api.call("GET", "/api/energy?days=7")
    found.update([str(energy.get("timezone") or ""), str(energy.get("currency") or "")])
    # As the resident's page writes a contact or a person: "nai-nai" -> "Nai nai", "daughter" -> "Daughter".
    found.update({capitalised(re.sub(r"[_-]+", " ", s)) for s in found if s})
    return sorted((s for s in found if s), key=len, reverse=True)


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def english_left(texts: list[str], names: list[str]) -> list[str]:
    """The texts with a Latin word of four letters or more, once names, ids and allowed words are taken out."""
    left = []
    for text in texts:
        rest = text
        for name in names:
            rest = rest.replace(name, " ")
        if [w for w in LATIN_WORD.findall(rest) if w not in ALLOWED_WORDS]:
            left.append(text)
    return left


def keys_shown(texts: list[str], keys: set[str]) -> list[str]:
    """Texts showing a catalogue key instead of its text (a key the catalogue lacks shows as itself)."""
    return [text for text in texts for candidate in KEY_LIKE.findall(text) if candidate in keys]


class Visit:
    """One person's browser: log in, then check each page as it is (language, axe, English left)."""

    def __init__(self, page: Any, house: House, language: str, names: list[str]) -> None:
        self.page = page
        self.house = house
        self.language = language
        self.words = words(language)
        self.keys = set(self.words)
        self.names = names

    def says(self, key: str, **values: Any) -> str:
        return self.words[key].format(**values)

    def check(self, where: str) -> None:
        page = self.page
        expect(page.locator("html")).to_have_attribute("lang", self.language)
        # Settled: nothing still loading (the live connection keeps the network busy: no "networkidle").
        expect(page.get_by_text(self.says("common.loading"), exact=True)).to_have_count(0)
        page.wait_for_timeout(200)
        texts = page.evaluate(VISIBLE_TEXT_JS)
        shown = keys_shown(texts, self.keys)
        assert not shown, f"{where}: catalogue keys shown as text: {shown}"
        if self.language != "en":
            left = english_left(texts, self.names)
            assert not left, f"{where} in {self.language}: English left on the page: {left}"
        violations = axe_violations(page)
        assert not violations, f"axe-core on {where} ({self.language}):\n{describe_violations(violations)}"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def lived_in(house: House) -> Iterator[House]:
    """The house with something on every page: an open alert (the panic button), a scene that has run."""
    house.z2m.publish("bedroom/panic", {"action": "single"})
    wait_until(lambda: house.api.call("GET", "/api/alerts?state=active")[1]["alerts"], what="an alert")
    house.z2m.publish("kitchen/motion", {"occupancy": True})
    yield house
    for alert in house.api.call("GET", "/api/alerts?state=active")[1]["alerts"]:
        house.api.call("POST", f"/api/alerts/{alert['id']}/resolve", {"note": "role suite over"})


def add_person(house: House, role: str, language: str) -> str:
    name = f"{role}-{language.lower()}"
    body: dict[str, Any] = {"username": name, "password": PASSWORD, "role": role}
    if role == "installer":
        body["expires_in_days"] = 1  # an installer's access is time-limited
    status, answer = house.api.call("POST", "/api/users", body)
    assert status in (201, 409), answer
    status, answer = house.api.call("PATCH", f"/api/users/{name}", {"language": language})
    assert status == 200 and answer["language"] == language, answer
    return name


@pytest.fixture
def person_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[tuple[Any, PageProblems]]:
    language = request.node.callspec.params["language"]
    # bypass_csp: axe-core is injected (the page's CSP refuses inline scripts; tested elsewhere).
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True, locale=BROWSER_LOCALE[language])
    page = context.new_page()
    problems = PageProblems(page)
    try:
        yield page, problems
    finally:
        context.close()
    assert problems.dialogs == []
    assert problems.errors == []


def log_in(page: Any, house: House, name: str) -> None:
    page.goto(house.url + "/")
    page.fill("#login-username", name)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")


# ------------------------------------------------------------------ the suite


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_the_role_in_the_language(lived_in: House, person_page: Any, role: str, language: str) -> None:
    page, _ = person_page
    house = lived_in
    name = add_person(house, role, language)
    visit = Visit(page, house, language, data_strings(house))
    log_in(page, house, name)
    if role == "resident":
        resident_pages(visit)
        return
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#conn")).to_have_text(visit.says("top.live"))
    expect(page.locator("#whoami")).to_have_text(f"{name} ({visit.says(f'role.{role}')})")
    expect(page.locator("#logout")).to_have_text(visit.says("top.logout"))
    expect(page.locator("#language-select")).to_have_value(language)
    if language == "zh-Hans":
        expect(page.locator('nav a[data-page="house"]')).to_have_text("家")
        expect(page.locator("#logout")).to_have_text("退出登录")
    for tab in ALL_PAGES:
        link = page.locator(f'nav a[data-page="{tab}"]')
        if tab in PAGES[role]:
            expect(link).to_be_visible()
            expect(link).to_contain_text(visit.says(f"nav.{tab}"))
        else:
            expect(link).to_be_hidden()
    offered_to(visit, role)
    for tab in PAGES[role]:
        page.locator(f'nav a[data-page="{tab}"]').click()
        expect(page.locator(f"#page-{tab}")).to_be_visible()
        PAGE_CHECKS[tab](visit, role)
        visit.check(f"{role}'s {tab} page")
    DIALOGS[role](visit)


def offered_to(visit: Visit, role: str) -> None:
    """What the role may do is offered, and nothing else: the house mode and Access are the owner's; device
    commands, names and scenes are for the owner and the installer; alerts are not the installer's."""
    page = visit.page
    expect(page.locator("article.tile").first).to_be_visible()
    configures = role in ("owner", "installer")
    if role == "owner":
        expect(page.locator("#access-open")).to_be_visible()
        expect(page.locator("#mode-select")).to_be_enabled()
    else:
        expect(page.locator("#access-open")).to_be_hidden()
        expect(page.locator("#mode-select")).to_be_disabled()
    edit_buttons = page.locator("article.tile button.edit")
    switches = page.locator("article.tile button.switch")
    if configures:
        expect(edit_buttons.first).to_be_visible()
        expect(switches.first).to_be_visible()
    else:
        expect(edit_buttons).to_have_count(0)
        expect(switches).to_have_count(0)
        expect(page.locator("article.tile input[type=range]")).to_have_count(0)
        # What a switch would show is a reading instead.
        expect(page.locator('article.tile .reading[data-key="on_off.on"]').first).to_be_visible()
    if role == "installer":
        expect(page.locator("#alert-banner")).to_be_hidden()


def check_house(visit: Visit, role: str) -> None:
    page = visit.page
    expect(page.locator("#house-filter")).to_have_attribute("placeholder", visit.says("house.find"))
    radiator = page.locator('article.tile .reading[data-key="thermostat.mode"] dd').first
    expect(radiator).to_have_text(visit.says("attr.thermostat.mode.heat"))
    expect(page.locator("#occupancy-state")).to_have_text(re.compile(
        "|".join(re.escape(visit.says(f"occupancy.{s}")) for s in ("home", "away", "unknown"))))


def check_alerts(visit: Visit, role: str) -> None:
    page = visit.page
    expect(page.locator("#page-alerts h2")).to_have_text(visit.says("page.alerts"))
    card = page.locator("#alerts article.alert").first
    expect(card).to_be_visible()
    expect(card.locator(".raised")).to_contain_text(visit.says("alerts.raised", at="").strip())


def check_scenes(visit: Visit, role: str) -> None:
    page = visit.page
    expect(page.locator("#page-scenes h2")).to_have_text(visit.says("page.scenes"))
    scene = page.locator("#scenes article.scene").first
    expect(scene).to_be_visible()
    run = scene.locator("button.run")
    if role in ("owner", "installer"):
        expect(run).to_have_text(visit.says("scenes.run_now"))
        expect(scene.locator('input[type="checkbox"]')).to_be_enabled()
    else:
        expect(run).to_have_count(0)
        expect(scene.locator('input[type="checkbox"]')).to_have_count(0)


def check_energy(visit: Visit, role: str) -> None:
    page = visit.page
    expect(page.locator("#page-energy h2")).to_have_text(visit.says("page.energy"))
    expect(page.locator("#energy .energy-days h3")).to_contain_text(visit.says("energy.per_day_heading",
                                                                               timezone="").strip(" ()（）"))
    expect(page.locator("#energy canvas").first).to_be_attached()
    expect(page.locator("#energy article.power .chart").first).to_be_visible()


def check_discovered(visit: Visit, role: str) -> None:
    page = visit.page
    expect(page.locator('#page-discovered h2[data-i18n="page.discovered"]')).to_have_text(visit.says("page.discovered"))
    expect(page.locator('#page-discovered h2[data-i18n="matter.title"]')).to_have_text(visit.says("matter.title"))
    # Nothing is discovered on the test gateway's loopback: the page says why, in the reader's language.
    said = [visit.says(f"discovered.{key}") for key in ("off", "nothing_yet", "nothing_to_show", "not_running")]
    expect(page.locator("#discovered")).to_contain_text(re.compile("|".join(map(re.escape, said))))


PAGE_CHECKS = {"house": check_house, "alerts": check_alerts, "scenes": check_scenes, "energy": check_energy,
               "discovered": check_discovered}


def owner_dialogs(visit: Visit) -> None:
    """The owner's dialogs: Access (people and tokens), a device's edit, an area's name; and a toast."""
    page = visit.page
    page.locator('nav a[data-page="house"]').click()
    page.click("#access-open")
    dialog = page.locator("#access-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#access-title")).to_have_text(visit.says("access.title"))
    row = dialog.locator(f'#access-users li[data-user="owner-{visit.language.lower()}"]')
    expect(row.locator(".access-role")).to_have_text(visit.says("role.owner"))
    expect(row.locator("button")).to_have_text(visit.says("access.remove"))
    expect(dialog.locator("#access-tokens li").first).to_contain_text(visit.says("access.last_used", used="")
                                                                        .strip(" ：:"))
    visit.check("the Access dialog")
    page.click("#access-close")
    page.locator("article.tile button.edit").first.click()
    dialog = page.locator("#edit-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#edit-title")).to_have_text(visit.says("edit.title"))
    expect(dialog.locator("#edit-name-hint")).to_contain_text(visit.says("edit.name_from", name="").strip(" ：:"))
    visit.check("the device's edit dialog")
    # Saved as it was: the toast says so in the reader's language.
    page.click("#edit-save")
    expect(page.locator("#toast")).to_have_text(visit.says("common.saved"))
    area_edit = page.locator("button.area-edit").first
    if area_edit.count():
        area_edit.click()
        dialog = page.locator("#area-dialog")
        expect(dialog.locator("#area-title")).to_have_text(visit.says("area.title"))
        expect(dialog.locator("#area-id")).to_be_visible()
        visit.check("the area's dialog")
        page.click("#area-cancel")


def caregiver_dialogs(visit: Visit) -> None:
    """A caregiver's dialog: resolving an alert (the only thing she changes)."""
    page = visit.page
    page.locator('nav a[data-page="alerts"]').click()
    page.locator("#alerts article.alert button.resolve").first.click()
    dialog = page.locator("#resolve-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#resolve-title")).to_have_text(visit.says("resolve.title"))
    visit.check("the resolve dialog")
    page.click("#resolve-cancel")


def installer_dialogs(visit: Visit) -> None:
    """An installer names devices: the edit dialog, and nothing of Access."""
    page = visit.page
    page.locator('nav a[data-page="house"]').click()
    page.locator("article.tile button.edit").first.click()
    expect(page.locator("#edit-title")).to_have_text(visit.says("edit.title"))
    visit.check("the installer's edit dialog")
    page.click("#edit-cancel")
    expect(page.locator("#access-dialog")).to_be_hidden()


DIALOGS = {"owner": owner_dialogs, "caregiver": caregiver_dialogs, "installer": installer_dialogs}


def resident_pages(visit: Visit) -> None:
    """A resident logging in at the main page lands on her own page, and stays there."""
    page = visit.page
    expect(page).to_have_url(re.compile(r"/resident$"))
    expect(page.locator("#resident")).to_be_visible()
    expect(page.locator("#fine")).to_have_text(visit.says("resident.fine"))
    expect(page.locator("#help")).to_have_text(visit.says("resident.help"))
    expect(page.locator("#reminders-title")).to_have_text(visit.says("resident.today"))
    expect(page).to_have_title(visit.says("resident.title"))
    if visit.language == "zh-Hans":
        expect(page.locator("#fine")).to_have_text("我很好")
    visit.check("the resident's page")
    # The main UI is not hers: going there brings her back to her page.
    page.goto(visit.house.url + "/#/house")
    expect(page).to_have_url(re.compile(r"/resident$"))
    expect(page.locator("#resident")).to_be_visible()
    expect(page.locator("#app")).to_have_count(0)
    # And the house's API answers her no more than that.
    assert page.evaluate("async () => (await fetch('/api/devices')).status") == 403


# ------------------------------------------------------------------ scene runs told in the reader's language


def test_scene_runs_are_told_in_the_readers_language(lived_in: House, browser: Any) -> None:
    house = lived_in
    name = add_person(house, "owner", "zh-Hans")
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    try:
        _, scenes = house.api.call("GET", "/api/scenes")
        scene_id = sorted(s["id"] for s in scenes["scenes"])[0]
        status, answer = house.api.call("POST", f"/api/scenes/{scene_id}/run", {"skip_conditions": True})
        assert status in (200, 202), answer
        wait_until(lambda: house.api.call("GET", f"/api/scenes/{scene_id}/runs")[1]["runs"], what="a run")
        log_in(page, house, name)
        expect(page.locator("#app")).to_be_visible()
        page.locator('nav a[data-page="scenes"]').click()
        card = page.locator(f'#scenes article.scene[data-scene="{scene_id}"]')
        card.locator("button[aria-expanded]").click()
        trace = card.locator("details.trace").first
        expect(trace).to_be_visible()
        expect(trace.locator("summary")).to_contain_text("手动运行")
    finally:
        context.close()
