"""The notification contacts of the running gateway, as the people linked to them see them: shared by the
owner's routes (gateway.api.login: linking a person) and the person's own (gateway.api.me). Imports no route
module, so that both can import it."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from gateway.api.keys import ENGINE_KEY

__all__ = ["contact_names", "known_contact", "refresh_contact"]

log = logging.getLogger("hearth.api")


def refresh_contact(app: web.Application, user: Any, old_contact: str | None = None) -> None:
    """After a person's language, link or settings changed: their contact as they now want it (and a contact
    they are no longer linked to as the config has it)."""
    engine = app.get(ENGINE_KEY)
    notifier = getattr(engine, "notifier", None)
    if notifier is None or not hasattr(notifier, "personalise"):
        return
    if old_contact is not None and old_contact != user.contact and notifier.has_target(old_contact):
        notifier.personalise(old_contact)
    if user.contact is not None and notifier.has_target(user.contact):
        try:
            notifier.personalise(user.contact, language=user.language, settings=user.notify)
        except ValueError as err:
            log.error("the notification settings of user %s do not apply (%s)", user.name, err)


def known_contact(app: web.Application, contact: str) -> bool:
    """Whether ``contact`` is a notify target of the running gateway (True when notifications do not run
    here: an app built without the scene engine cannot tell, and the link is checked again at start)."""
    notifier = getattr(app.get(ENGINE_KEY), "notifier", None)
    return notifier is None or not hasattr(notifier, "has_target") or notifier.has_target(contact)


def contact_names(app: web.Application) -> list[str]:
    """The notification contacts of the running gateway, by name (the owner links people to these)."""
    notifier = getattr(app.get(ENGINE_KEY), "notifier", None)
    names = getattr(notifier, "target_names", None)
    return sorted(names()) if names is not None else []
