"""The keys of what the API's modules share through the aiohttp application (and the request).

A module of its own, importing none of the route modules, so that every route module reads the hub, the stores
and the scene engine from here and none of them imports :mod:`gateway.api.app` (which builds the app from them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.api.accounts import Principal, SessionStore, UserStore
from gateway.api.auth import TokenStore
from gateway.hub import Hub

if TYPE_CHECKING:
    from gateway.scenes.engine import SceneEngine

__all__ = ["DEVICE_META_KEY", "ENGINE_KEY", "HUB_KEY", "SESSIONS_KEY", "STORE_KEY", "TOKENS_KEY", "TOKEN_INFO_KEY",
           "USERS_KEY"]

HUB_KEY = web.AppKey("hearth.hub", Hub)
TOKENS_KEY = web.AppKey("hearth.tokens", TokenStore)
USERS_KEY = web.AppKey("hearth.users", UserStore)
SESSIONS_KEY = web.AppKey("hearth.sessions", SessionStore)
# The SQLite store (history, energy) and the owner's device edits; absent when the app runs without them
# (the routes that need them answer 503). Set by create_app(store=..., device_meta=...).
STORE_KEY = web.AppKey("hearth.store", object)
DEVICE_META_KEY = web.AppKey("hearth.device_meta", object)
# Typed by annotation only: the scene engine is imported by the routes that use it, not by every module here.
ENGINE_KEY: web.AppKey[SceneEngine] = web.AppKey("hearth.scenes")
# The Principal (who is calling: a token or a logged-in person, and their role) on every authenticated
# /api request; ``.name`` is what alerts record. RequestKey is aiohttp >= 3.13; a plain string key does
# the same on older versions (pyproject allows >= 3.9).
TOKEN_INFO_KEY: Any = (
    web.RequestKey("hearth.token", Principal) if hasattr(web, "RequestKey") else "hearth.token"
)
