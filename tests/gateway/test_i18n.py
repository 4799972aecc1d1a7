"""The message catalogue (gateway.i18n) and each person's language (GET/PATCH /api/me)."""

# Chinese text is written with Chinese punctuation, on purpose:
# ruff: noqa: RUF001
from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from gateway.api.app import CSRF_HEADER, TOKENS_KEY, USERS_KEY
from gateway.i18n import CATALOGUE_DIR, available_languages, best_match, catalogue, placeholders, translate
from tests.gateway.test_accounts import PASSWORD, _csrf, _login, served  # noqa: F401  (the fixture)

OTHER_LANGUAGES = [tag for tag in available_languages() if tag != "en"]


def test_english_and_simplified_chinese_are_there_english_first() -> None:
    assert available_languages()[0] == "en"
    assert "zh-Hans" in available_languages()


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_every_catalogue_has_every_english_key_with_the_same_placeholders(language: str) -> None:
    english, other = catalogue("en"), catalogue(language)
    missing = sorted(set(english) - set(other))
    assert not missing, f"{language}.json lacks {missing}"
    extra = sorted(set(other) - set(english))
    assert not extra, f"{language}.json has keys English does not: {extra}"
    wrong = {key: (placeholders(english[key]), placeholders(other[key])) for key in english
             if placeholders(english[key]) != placeholders(other[key])}
    assert not wrong, f"{language}.json: placeholders differ: {wrong}"
    assert all(isinstance(text, str) and text.strip() for text in other.values())


def test_catalogues_are_flat_objects_of_strings_without_duplicate_keys() -> None:
    for path in CATALOGUE_DIR.glob("*.json"):
        def no_duplicates(pairs: list[tuple[str, Any]], path: Any = path) -> dict[str, Any]:
            keys = [k for k, _ in pairs]
            assert len(keys) == len(set(keys)), f"{path.name}: duplicate keys"
            return dict(pairs)

        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
        assert all(isinstance(v, str) for v in data.values()), path.name


def test_translate_falls_back_to_english_and_fills_placeholders() -> None:
    assert translate("zh-Hans", "notify.unanswered_title", title="Morning check") == "无人回应：Morning check"
    assert translate("en", "notify.unanswered_title", title="Morning check") == "Unanswered: Morning check"
    assert translate("fr", "resident.fine") == "I’m fine"  # no French catalogue: English
    assert translate(None, "resident.fine") == "I’m fine"
    assert translate("zh-Hans", "no.such.key") == "no.such.key"


def test_the_browser_preference_picks_the_language() -> None:
    assert best_match("zh-CN,zh;q=0.9,en;q=0.8") == "zh-Hans"
    assert best_match("en-GB,en;q=0.9,zh-Hans;q=0.5") == "en"
    assert best_match("fr-FR,zh;q=0.5") == "zh-Hans"
    assert best_match("zh-TW") == "en"  # Traditional Chinese is not Simplified: no catalogue yet
    assert best_match("") == best_match(None) == "en"


async def test_a_person_chooses_a_language_and_keeps_the_session(served: Any) -> None:  # noqa: F811
    app, url, session = served
    await _login(session, url, "carl")
    async with session.get(url + "/api/me", headers={"Accept-Language": "zh-CN,zh;q=0.9"}) as response:
        me = await response.json()
    assert me["language"] == "zh-Hans" and me["language_chosen"] is False  # the browser's, until chosen
    assert {lang["tag"]: lang["name"] for lang in me["languages"]} == {"en": "English", "zh-Hans": "简体中文"}
    async with session.get(url + "/api/me") as response:
        assert (await response.json())["language"] == "en"

    async with session.patch(url + "/api/me", json={"language": "zh-Hans"},
                             headers={CSRF_HEADER: _csrf(session)}) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["language"] == "zh-Hans"
    # Chosen: whatever the browser says, and in the same session (a language is not a credential).
    async with session.get(url + "/api/me", headers={"Accept-Language": "en"}) as response:
        assert response.status == 200
        me = await response.json()
    assert me["language"] == "zh-Hans" and me["language_chosen"] is True
    assert app[USERS_KEY].get("carl").language == "zh-Hans"

    async with session.patch(url + "/api/me", json={"language": "tlh"},
                             headers={CSRF_HEADER: _csrf(session)}) as response:
        assert response.status == 400 and (await response.json())["field"] == "language"
    async with session.patch(url + "/api/me", json={"language": "zh-Hans", "role": "owner"},
                             headers={CSRF_HEADER: _csrf(session)}) as response:
        assert response.status == 400  # only one's own settings here
    async with session.patch(url + "/api/me", json={"language": None},
                             headers={CSRF_HEADER: _csrf(session)}) as response:
        assert (await response.json())["language_chosen"] is False
    assert app[USERS_KEY].get("carl").language is None


async def test_the_owner_sets_the_residents_language_without_ending_her_sessions(served: Any) -> None:  # noqa: F811
    app, url, session = served
    app[USERS_KEY].add("nai-nai", "resident", PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as tablet:
        await _login(tablet, url, "nai-nai")
        await _login(session, url)
        async with session.patch(url + "/api/users/nai-nai", json={"language": "zh"},
                                 headers={CSRF_HEADER: _csrf(session)}) as response:
            assert response.status == 200 and (await response.json())["language"] == "zh-Hans"
        async with tablet.get(url + "/api/me") as response:
            assert response.status == 200 and (await response.json())["language"] == "zh-Hans"


async def test_an_api_token_has_no_language_of_its_own(served: Any) -> None:  # noqa: F811
    app, url, _ = served
    token, _ = app[TOKENS_KEY].create("tablet", role="resident")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as bare:
        async with bare.get(url + "/api/me", headers={**headers, "Accept-Language": "zh-Hans"}) as response:
            assert (await response.json())["language"] == "zh-Hans"
        async with bare.patch(url + "/api/me", json={"language": "en"}, headers=headers) as response:
            assert response.status == 400 and (await response.json())["reason"] == "not_a_user"
