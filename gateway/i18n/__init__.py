"""The message catalogue: what the gateway itself says, in each language it speaks.

The catalogues are data, one flat JSON file per language (``gateway/web/i18n/<tag>.json``: key -> text with
``{placeholders}``), shared with the browser, which fetches the same files as ``/ui/i18n/<tag>.json``:
one copy, and adding a language is adding a file. English (``en``) is complete by definition; a key another
catalogue lacks falls back to it (tests/gateway/test_i18n.py keeps them complete).

Tags are BCP 47 (``zh-Hans``: Simplified Chinese, whatever the region). Text written by people (profile
messages, alert titles, a caregiver's resolution note) is not translated: it is shown as written.
"""

from __future__ import annotations

import json
import logging
import string
from functools import cache
from pathlib import Path

__all__ = ["CATALOGUE_DIR", "DEFAULT_LANGUAGE", "available_languages", "best_match", "catalogue",
           "normalise", "placeholders", "translate"]

log = logging.getLogger("hearth.i18n")

CATALOGUE_DIR = Path(__file__).resolve().parent.parent / "web" / "i18n"
DEFAULT_LANGUAGE = "en"


@cache
def available_languages() -> tuple[str, ...]:
    """The tags of the catalogues present, English first."""
    tags = sorted(p.stem for p in CATALOGUE_DIR.glob("*.json"))
    return tuple(sorted(tags, key=lambda tag: tag != DEFAULT_LANGUAGE))


@cache
def catalogue(language: str) -> dict[str, str]:
    """The catalogue of ``language`` (an available tag), or an empty one if it has none."""
    if language not in available_languages():
        return {}
    return dict(json.loads((CATALOGUE_DIR / f"{language}.json").read_text(encoding="utf-8")))


def normalise(language: str | None) -> str | None:
    """The available tag ``language`` names (case-insensitively; ``zh``, ``zh-CN`` and ``zh-SG`` are
    Simplified Chinese), or None."""
    if not language:
        return None
    wanted = language.strip().replace("_", "-").casefold()
    by_fold = {tag.casefold(): tag for tag in available_languages()}
    if wanted in by_fold:
        return by_fold[wanted]
    primary, _, rest = wanted.partition("-")
    # Chinese without a script: the mainland's and Singapore's are Simplified, Taiwan's and Hong Kong's
    # Traditional (which has no catalogue: not Simplified either).
    if primary == "zh" and rest in ("", "cn", "sg", "hans-cn", "hans-sg", "my"):
        return by_fold.get("zh-hans")
    if primary in by_fold and primary != "zh":
        return by_fold[primary]
    return None


def best_match(accept_language: str | None) -> str:
    """The available language an ``Accept-Language`` header prefers most, else English."""
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "")[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and (found := normalise(tag)) is not None:
            choices.append((-quality, index, found))
    return min(choices)[2] if choices else DEFAULT_LANGUAGE


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def translate(language: str | None, key: str, **values: object) -> str:
    """``key``'s text in ``language`` (else in English; else the key itself), its placeholders filled."""
    text = catalogue(normalise(language) or DEFAULT_LANGUAGE).get(key)
    if text is None:
        text = catalogue(DEFAULT_LANGUAGE).get(key)
        if text is None:
            log.warning("no text for %r", key)
            return key
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        log.warning("the %s text of %r does not fit its values", language, key)
        return text
