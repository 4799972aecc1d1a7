"""The acknowledge link of a notification: ``/api/ack/{token}``, without login.

A message about an alert (Apprise targets, when ``[notify] public_url`` is set) ends with
``<public_url>/api/ack/<token>``. The token is the only credential: random, one-time, bound to one alert,
expiring (:class:`gateway.scenes.notify.AckTokens`, which keeps only its hash).

- ``GET`` shows a small page: which alert, its state, and a button. It changes nothing: mail scanners
  and chat apps fetch links to preview them, and must not acknowledge an alert nobody has read.
- ``POST`` (the button) acknowledges that alert and nothing else, as the person the message went to;
  the token is dead afterwards. The answer comes once the acknowledgement is on disk.

The pages speak the language of the contact the link was sent to (``language`` in [notify.<name>]).

No CSRF token: there is no session or cookie to ride on; whoever can post here holds the token already.
The pages are not cached, not indexed, and send no Referer (the URL is the credential).
"""

from __future__ import annotations

import html
import logging
from typing import Any, Protocol

from aiohttp import web

from gateway.clock import iso_utc
from gateway.i18n import best_match, translate
from gateway.scenes.engine import resolution_text
from gateway.scenes.notify import AckCheck, AckLink, AckTokens

__all__ = ["AckEngine", "add_ack_routes"]

_log = logging.getLogger("hearth.api.ack")


class AckEngine(Protocol):
    """What the routes need of the scene engine."""

    alerts: dict[str, dict[str, Any]]

    def acknowledge(self, alert_id: str, by: str) -> dict[str, Any]: ...

    async def durable(self) -> None: ...


_ENGINE_KEY = web.AppKey("hearth.ack.engine", AckEngine)
_TOKENS_KEY = web.AppKey("hearth.ack.tokens", AckTokens)

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    # Inline style only, the form posts back here, no frame may hold the page (a click-jacked button).
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;font-size:1.2rem;"
    "line-height:1.5;color:#111;background:#fff}h1{font-size:1.6rem}"
    "button{font-size:1.3rem;padding:.8rem 1.6rem;min-height:3rem;border-radius:.5rem;border:2px solid #0b4f9c;"
    "background:#0b4f9c;color:#fff;cursor:pointer}.muted{color:#444}"
)


def add_ack_routes(app: web.Application, engine: AckEngine, tokens: AckTokens) -> None:
    """``GET`` and ``POST /api/ack/{token}``. Public: the auth middleware must let ``/api/ack/`` through
    (and exempt it from CSRF checks); the token is checked here."""
    app[_ENGINE_KEY] = engine
    app[_TOKENS_KEY] = tokens
    app.router.add_get("/api/ack/{token}", show_ack_page)
    app.router.add_post("/api/ack/{token}", acknowledge_by_link)


def _language(request: web.Request, engine: AckEngine, link: AckLink | None) -> str:
    """The page speaks the language of the contact the link was sent to (their ``language`` in
    [notify.<name>]); a link nobody was sent: the browser's."""
    language_of = getattr(engine, "language_of", None)
    if link is not None and language_of is not None:
        return str(language_of(link.target))
    return best_match(request.headers.get("Accept-Language"))


async def show_ack_page(request: web.Request) -> web.Response:
    """The page an acknowledge link in a notification opens: the alert, and a button to acknowledge it."""
    engine, tokens = request.app[_ENGINE_KEY], request.app[_TOKENS_KEY]
    state, link = tokens.check(request.match_info["token"])
    lang = _language(request, engine, link)
    refused = _refusal(lang, state, link, engine)
    if refused is not None or link is None:
        return refused or _page(lang, 404, translate(lang, "ack.not_recognised"), "")
    alert = engine.alerts[link.alert_id]
    if alert["state"] != "open":
        return _page(lang, 200, translate(lang, "ack.already"),
                     f"<p>{_describe(lang, alert)}</p>{_state_line(lang, alert)}")
    body = (
        f"<p>{_describe(lang, alert)}</p>"
        f'<form method="post"><button type="submit">{html.escape(translate(lang, "ack.button"))}</button></form>'
        f'<p class="muted">{html.escape(translate(lang, "ack.explain"))}</p>'
    )
    return _page(lang, 200, translate(lang, "ack.question"), body)


async def acknowledge_by_link(request: web.Request) -> web.Response:
    """Acknowledge the alert of a link (once: a link is used up by it, and expires after ``[notify]
    ack_link_ttl_h``)."""
    engine, tokens = request.app[_ENGINE_KEY], request.app[_TOKENS_KEY]
    # check and redeem with no await between: two posts of one token cannot both get through.
    state, link = tokens.redeem(request.match_info["token"])
    lang = _language(request, engine, link)
    refused = _refusal(lang, state, link, engine)
    if refused is not None or link is None:
        return refused or _page(lang, 404, translate(lang, "ack.not_recognised"), "")
    alert = engine.acknowledge(link.alert_id, f"link:{link.target}")
    # Answered once it is on disk: a confirmation followed by a power cut must not page her again.
    await engine.durable()
    _log.info("alert %s acknowledged through the link sent to %r", link.alert_id, link.target)
    from gateway.api.data import audit

    await audit(request, "alert.acknowledge", link.alert_id, {"through": "link"}, actor=("link", link.target))
    current = engine.alerts[link.alert_id]
    if alert.get("acknowledged_by") != f"link:{link.target}":
        return _page(lang, 200, translate(lang, "ack.already"),
                     f"<p>{_describe(lang, current)}</p>{_state_line(lang, current)}")
    return _page(lang, 200, translate(lang, "ack.thanks"),
                 f"<p>{_describe(lang, current)}</p><p>{html.escape(translate(lang, 'ack.others'))}</p>")


def _refusal(lang: str, state: AckCheck, link: AckLink | None, engine: AckEngine) -> web.Response | None:
    def page(status: int, key: str) -> web.Response:
        return _page(lang, status, translate(lang, key), f"<p>{html.escape(translate(lang, key + '_text'))}</p>")

    if state == "unknown" or link is None:
        return page(404, "ack.not_recognised")
    if state == "used":
        return page(410, "ack.used")
    if state == "expired":
        return page(410, "ack.expired")
    if link.alert_id not in engine.alerts:
        return page(410, "ack.gone")
    return None


def _describe(lang: str, alert: dict[str, Any]) -> str:
    # The title and message are the profile's, as its author wrote them.
    severity = html.escape(translate(lang, f"severity.{alert.get('severity')}")
                           if alert.get("severity") in ("critical", "warning") else translate(lang, "severity.info"))
    title = html.escape(str(alert.get("title") or alert.get("key") or "Alert"))
    message = html.escape(str(alert.get("message") or ""))
    raised = alert.get("raised_at")
    when = (f' <span class="muted">({html.escape(translate(lang, "ack.raised", time=iso_utc(raised)))})</span>'
            if raised else "")
    return f"<strong>{severity}: {title}</strong>{when}<br>{message}"


def _state_line(lang: str, alert: dict[str, Any]) -> str:
    if alert["state"] == "acknowledged":
        by = html.escape(_who(lang, alert.get("acknowledged_by")))
        return f"<p>{translate(lang, 'ack.acknowledged_by', name=by)}</p>"
    if alert["state"] == "resolved":
        said = resolution_text(lang, str(alert.get("resolution") or "resolved"))
        return f"<p>{translate(lang, 'ack.resolved', resolution=html.escape(said))}</p>"
    return ""


def _who(lang: str, by: Any) -> str:
    someone = translate(lang, "ack.someone")
    text = str(by or someone)
    return text.removeprefix("link:").removeprefix("token:") or someone


def _page(lang: str, status: int, heading: str, body: str) -> web.Response:
    text = (
        f'<!doctype html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(heading)} · Hearth</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(heading)}</h1>{body}</main></body></html>"
    )
    return web.Response(status=status, text=text, content_type="text/html", headers=_HEADERS)
