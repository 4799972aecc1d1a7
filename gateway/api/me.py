"""A person's own notification settings (issue 18: a caregiver sets their own, and nothing else).

The owner links a person to the notification contact they are (``hearth user set NAME --contact daughter``,
or ``PATCH /api/users/{name}`` with ``{"contact": "daughter"}``): a ``[notify.<name>]`` of the config. That
person may then, without touching the config:

- ``GET /api/me/notifications``: their contact as the notifier has it (kind, language, quiet hours, channels
  by kind and number; never a URL: they carry credentials), and what of it is their own setting;
- ``PUT /api/me/notifications``: ``{"quiet_hours": "22:00-07:00" | null, "urls": ["ntfys://..."]}``: either or
  both, over the config's (``{}``: the config's again). Checked as the config's are (an Apprise URL Apprise
  does not understand is refused); critical alerts still break through quiet hours. Audited, without URLs;
- ``POST /api/me/notifications/test``: a test notification to their contact, now (202: on its way).

Their language is their account's (``PATCH /api/me``): notifications to their contact are in it too.
The settings live in the person's account (``users.json``, mode 0600) and are applied at every start
(:func:`apply_saved`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.accounts import AccountError, Principal, UserStore
from gateway.api.data import audit
from gateway.api.keys import ENGINE_KEY, TOKEN_INFO_KEY, USERS_KEY
from gateway.api.login import _json_body, request_language
from gateway.api.responses import _error, _json
from gateway.i18n import translate

__all__ = ["MyNotificationsBody", "add_my_notification_routes", "apply_saved"]

log = logging.getLogger("hearth.api")


class MyNotificationsBody(BaseModel):
    """A person's own settings for the contact they are; a field left out is the config's."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: ``"22:00-07:00"`` (the house's local time): notifications that are not critical wait until it ends;
    #: null: none, whatever the config says.
    quiet_hours: str | None = Field(None, max_length=32)
    #: Apprise URLs that reach this person, all notified at once (instead of the config's ``urls``).
    urls: list[str] | None = Field(None, min_length=1, max_length=10)


def _notifier(request: web.Request) -> Any:
    engine = request.app.get(ENGINE_KEY)
    return getattr(engine, "notifier", None)


def _settings_of(body: MyNotificationsBody) -> dict[str, Any]:
    return {name: getattr(body, name) for name in ("quiet_hours", "urls") if name in body.model_fields_set}


def apply_saved(users: UserStore, notifier: Any) -> int:
    """At start: each linked person's language and own settings over their contact. How many applied; one
    that no longer fits (its contact gone, a URL Apprise no longer takes) is logged and left out."""
    applied = 0
    try:
        people = users.list()
    except AccountError as err:
        log.error("the people's notification settings are not applied: %s", err)
        return 0
    for user in people:
        if user.contact is None:
            continue
        if not notifier.has_target(user.contact):
            log.warning("user %s is linked to the contact %r, which the config no longer has", user.name,
                        user.contact)
            continue
        try:
            notifier.personalise(user.contact, language=user.language, settings=user.notify)
        except ValueError as err:
            log.error("the notification settings of user %s do not apply (%s): the config's are used", user.name,
                      err)
            continue
        applied += 1
    return applied


async def _linked(request: web.Request, *, need_contact: bool = True) -> tuple[Any, Any] | web.Response:
    """(the calling person's account, the notifier), or the answer saying why not: a token, notifications not
    running, or (with ``need_contact``) an account the owner has not linked to a contact of the config."""
    principal: Principal = request[TOKEN_INFO_KEY]
    if principal.kind != "user":
        return _error(400, "an API token is no contact; log in as the person", reason="not_a_user")
    user = await asyncio.to_thread(request.app[USERS_KEY].get, principal.id)
    notifier = _notifier(request)
    if user is None or notifier is None:
        return _error(503, "notifications are not running", reason="unavailable")
    if need_contact and (user.contact is None or not notifier.has_target(user.contact)):
        return _error(409, "your account is not linked to a notification contact: the owner links it "
                           "(hearth user set NAME --contact CONTACT)", reason="not_linked")
    return user, notifier


async def get_my_notifications(request: web.Request) -> web.Response:
    """The contact this person is, as notifications reach it, and which of it is their own setting."""
    found = await _linked(request, need_contact=False)
    if isinstance(found, web.Response):
        return found
    user, notifier = found
    if user.contact is None or not notifier.has_target(user.contact):
        language = await request_language(request)
        return _json({"contact": None, "linked": user.contact,
                      "hint": translate(language, "me.notify.not_linked")})
    return _json({**notifier.describe(user.contact), "linked": user.contact, "own": sorted(user.notify or {})})


async def put_my_notifications(request: web.Request) -> web.Response:
    """Set (or with ``{}`` drop) this person's own quiet hours and channels."""
    found = await _linked(request)
    if isinstance(found, web.Response):
        return found
    user, notifier = found
    body = await _json_body(request, MyNotificationsBody)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, MyNotificationsBody)
    settings = _settings_of(body)
    try:  # checked (and applied) first: nothing is saved that does not work
        notifier.personalise(user.contact, language=user.language, settings=settings)
    except ValueError as err:
        return _error(400, str(err), reason="invalid")
    try:
        await asyncio.to_thread(request.app[USERS_KEY].set_notify, user.name, settings or None)
    except AccountError as err:
        notifier.personalise(user.contact, language=user.language, settings=user.notify)
        return _error(500, str(err), reason="not_saved")
    await audit(request, "notify.settings", user.contact,
                {"quiet_hours": settings.get("quiet_hours", "config"),
                 "channels": len(settings["urls"]) if "urls" in settings else "config"})
    return _json({**notifier.describe(user.contact), "linked": user.contact, "own": sorted(settings)})


async def test_my_notifications(request: web.Request) -> web.Response:
    """A test notification to this person's contact, now (quiet hours aside: they asked for it)."""
    from gateway.scenes.notify import Notification

    found = await _linked(request)
    if isinstance(found, web.Response):
        return found
    user, notifier = found
    language = notifier.language_of(user.contact)
    notification = Notification(f"test-{secrets.token_hex(4)}", request.app[ENGINE_KEY].clock.time(),
                                translate(language, "me.notify.test_title"),
                                translate(language, "me.notify.test_message", name=user.name), "critical")
    notifier.send(user.contact, notification)
    return _json({"id": notification.id, "contact": user.contact}, status=202)


def add_my_notification_routes(app: web.Application) -> None:
    app.router.add_get("/api/me/notifications", get_my_notifications)
    app.router.add_put("/api/me/notifications", put_my_notifications)
    app.router.add_post("/api/me/notifications/test", test_my_notifications)
