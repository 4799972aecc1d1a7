"""The UI's words are all in the catalogues, in every language: no key the pages use is missing from one, no
catalogue has a key another lacks, and the scene runs the gateway tells (``trace_sentences``) come out in
Simplified Chinese with no English left but names. No browser needed: these read the files.

(tests/gateway/test_i18n.py checks that every catalogue has every English key with the same placeholders;
the browser suite tests/ui/test_roles_in_languages.py reads the rendered pages for English left in the JS.)
"""

# Chinese text is written with Chinese punctuation, on purpose:
# ruff: noqa: RUF001
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.i18n import CATALOGUE_DIR, available_languages
from gateway.scenes.explain import trace_sentences

WEB = Path(__file__).resolve().parents[2] / "gateway" / "web"
UI_FILES = ("index.html", "resident.html", "app.js", "access.js", "session.js", "resident.js", "i18n.js")

# Keys named outright: t("key"), say("key", …) (session.js), textWith("key", …), and the data-i18n*
# attributes of the HTML.
LITERAL_KEYS = [
    re.compile(r"""\bt\(\s*["']([\w.-]+)["']"""),
    re.compile(r"""\bsay\(\s*["']([\w.-]+)["']"""),
    re.compile(r"""\btextWith\(\s*["']([\w.-]+)["']"""),
    re.compile(r"""data-i18n(?:-[a-z-]+)?=["']([\w.-]+)["']"""),
]
# Keys made from a value: t(`role.${role}`). Each such prefix is listed here with the values the code puts
# in it, so that a value without its text fails here rather than showing its key on a page.
APP_KINDS = re.compile(r'\["\w+", "(\w+)"\]')
TEMPLATE_VALUES: dict[str, tuple[str, ...]] = {
    "role.": ("owner", "caregiver", "installer", "resident"),
    "mode.": ("home", "away", "night", "vacation"),
    "occupancy.": ("home", "away", "unknown"),
    "occupancy.short.": ("home", "away", "unknown"),
    "alerts.pill.": ("critical", "warning", "info"),
    "house.cover.": ("open", "stop", "close"),
    "house.lock.": ("lock", "unlock"),
    "house.kind.": (),  # the KINDS table of app.js: checked on its own below
}
TEMPLATE = re.compile(r"""\bt\(\s*`([\w.-]*)\$\{""")


def catalogue_file(language: str) -> dict[str, str]:
    return dict(json.loads((CATALOGUE_DIR / f"{language}.json").read_text(encoding="utf-8")))


def used_keys() -> dict[str, set[str]]:
    """file -> the keys it names outright."""
    found: dict[str, set[str]] = {}
    for name in UI_FILES:
        text = (WEB / name).read_text(encoding="utf-8")
        found[name] = {key for pattern in LITERAL_KEYS for key in pattern.findall(text)}
    return found


def test_every_catalogue_has_exactly_the_keys_of_the_others() -> None:
    keys = {language: set(catalogue_file(language)) for language in available_languages()}
    english = keys["en"]
    for language, theirs in keys.items():
        assert not theirs - english, f"{language} has keys English lacks: {sorted(theirs - english)}"
        assert not english - theirs, f"{language} lacks: {sorted(english - theirs)}"


@pytest.mark.parametrize("language", available_languages())
def test_every_key_the_ui_names_is_in_the_catalogue(language: str) -> None:
    texts = catalogue_file(language)
    missing = {name: sorted(keys - set(texts)) for name, keys in used_keys().items() if keys - set(texts)}
    assert not missing, f"keys the UI uses that {language} lacks: {missing}"
    assert sum(len(keys) for keys in used_keys().values()) > 250, "the key scan found too little: is it broken?"


@pytest.mark.parametrize("language", available_languages())
def test_every_key_the_ui_makes_from_a_value_is_in_the_catalogue(language: str) -> None:
    texts = catalogue_file(language)
    app = "\n".join((WEB / name).read_text(encoding="utf-8") for name in ("app.js", "access.js"))
    prefixes = set(TEMPLATE.findall(app))
    unlisted = prefixes - set(TEMPLATE_VALUES)
    assert not unlisted, f"keys made from values, not listed here: {unlisted}"
    missing = [prefix + value for prefix, values in TEMPLATE_VALUES.items() for value in values
               if prefix + value not in texts]
    kinds = APP_KINDS.findall(app.partition("const KINDS = [")[2].partition(";")[0])
    assert "thermometer" in kinds
    missing += [key for kind in [*kinds, "sensor"] for key in (f"house.kind.{kind}", f"house.kind.{kind}.start")
                if key not in texts and not (kind == "sensor" and key.endswith(".start"))]
    assert not missing, f"{language} lacks: {missing}"


def test_the_ui_shows_no_catalogue_key_it_lacks_in_its_html_either() -> None:
    # The static HTML's English is what shows before the catalogue loads: each marked text is the catalogue's
    # English, so that the page reads the same before and after.
    english = catalogue_file("en")
    html = (WEB / "index.html").read_text(encoding="utf-8")
    differ = []
    for key, shown in re.findall(r'data-i18n="([\w.-]+)"[^>]*>([^<]+)<', html):
        if " ".join(shown.split()) != english[key]:
            differ.append((key, " ".join(shown.split()), english[key]))
    assert not differ, differ


# ------------------------------------------------------------------ scene runs in sentences

NAMES = {"hall:motion": "Hall motion", "living:lamp": "Lamp", "bedroom:fan": "Fan"}
TRACES: list[dict[str, Any]] = [
    {"trigger": {"kind": "absence", "quiet_s": 2820, "last_activity": "2026-03-10T07:12:00Z"},
     "conditions": [
         {"kind": "time", "now": "08:00", "result": True},
         {"kind": "weekday", "today": "mon", "result": False},
         {"kind": "mode", "mode": "home", "result": True},
         {"kind": "occupancy", "occupancy": "home", "wanted": ["home"], "result": True},
         {"kind": "last_activity", "last_area": None, "result": False},
         {"kind": "state", "attribute": "temperature.celsius", "values": {"hall:motion": 15.5}, "match": "all",
          "result": True},
         {"kind": "happened", "attribute": "occupancy.occupied", "last": "2026-03-10T07:12:00Z",
          "after": "contact.open", "after_last": None, "within_s": 600, "result": False},
         {"kind": "any", "conditions": [{"kind": "mode", "mode": "away", "result": False}], "result": False},
         {"kind": "not", "condition": {"kind": "mode", "mode": "away", "result": True}, "result": False}],
     "actions": [{"kind": "command", "capability": "on_off", "command": "on",
                  "targets": [{"device": "hall:motion", "status": "ok"},
                              {"device": "living:lamp", "status": "timeout"}]},
                 {"kind": "command", "capability": "cover", "command": "close", "targets": []},
                 {"kind": "set_mode"}],
     "result": "conditions not met"},
    {"trigger": {"kind": "state", "attribute": "occupancy.occupied", "device_id": "hall:motion", "value": True,
                 "old": False}, "result": "skipped: cooldown until 2026-03-10T08:00:00Z"},
    {"trigger": {"kind": "state", "attribute": "contact.open", "device_id": "hall:motion", "value": True,
                 "held_s": 900}, "result": "done", "actions": []},
    {"trigger": {"kind": "button", "device_id": "hall:motion", "value": "double"}, "result": "done", "actions": []},
    {"trigger": {"kind": "sun", "event": "sunset", "at": "17:32"}, "result": "skipped: still running"},
    {"trigger": {"kind": "time", "at": "07:00"}, "result": "running"},
    {"trigger": {"kind": "mode", "value": "away", "old": "home"}, "result": "running"},
    {"trigger": {"kind": "occupancy", "value": "away", "old": "home", "held_s": 600}, "result": "done"},
    {"trigger": {"kind": "manual"}, "result": "done"},
    {"trigger": {"kind": "start"}, "result": "cancelled"},
]
# English left in a Chinese sentence: a word of Latin letters, once the names (and units) are taken out.
ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")


def without_names(text: str) -> str:
    for name in NAMES.values():
        text = text.replace(name, "")
    return text


def test_scene_runs_in_english_are_as_the_installer_reads_them() -> None:
    lines = [line for trace in TRACES for line in trace_sentences(trace, NAMES)]
    assert lines[0] == "No motion anywhere in the house for 47 min; last activity at 07:12"
    assert "It was Monday: not met" in lines
    assert "Hall motion: motion became motion (was no motion)" in lines
    assert "Hall motion had shown open for 15 min (limit 15 min)" in lines
    assert "Lamp: turned on, timeout" in lines
    assert "Skipped: cooldown" in lines
    assert "Sunset at 17:32" in lines


def test_scene_runs_in_chinese_have_no_english_but_names(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hearth.i18n"):
        lines = [line for trace in TRACES for line in trace_sentences(trace, NAMES, language="zh-Hans")]
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    english = [line for line in lines if ENGLISH_WORD.search(without_names(line))]
    assert not english, english
    assert lines[0] == "家中任何地方都没有活动，已有 47 分钟；最后一次活动在 07:12"
    assert "那天是星期一：不满足" in lines
    assert "Lamp：打开了，设备没有确认" in lines
    assert "已跳过：还在冷却时间内" in lines
    assert "日落（17:32）" in lines
