"""The HTTP API and its bearer tokens (DESIGN.md contract 6).

Token handling (:mod:`gateway.api.auth`) is imported eagerly: it is what ``hearth token`` needs and
it is light. The aiohttp application is imported on first use, so the CLI does not pay for aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.api.auth import TokenError, TokenInfo, TokenStore, token_command

if TYPE_CHECKING:
    from gateway.api.app import (
        DEVICE_META_KEY,
        HUB_KEY,
        STORE_KEY,
        TOKEN_INFO_KEY,
        TOKENS_KEY,
        ApiServer,
        create_app,
        hub_metrics,
    )

__all__ = [
    "DEVICE_META_KEY",
    "HUB_KEY",
    "STORE_KEY",
    "TOKENS_KEY",
    "TOKEN_INFO_KEY",
    "ApiServer",
    "TokenError",
    "TokenInfo",
    "TokenStore",
    "create_app",
    "hub_metrics",
    "token_command",
]

_APP_NAMES = frozenset({"DEVICE_META_KEY", "HUB_KEY", "STORE_KEY", "TOKENS_KEY", "TOKEN_INFO_KEY", "ApiServer",
                        "create_app", "hub_metrics"})


def __getattr__(name: str) -> Any:
    if name in _APP_NAMES:
        from gateway.api import app

        return getattr(app, name)
    raise AttributeError(f"module 'gateway.api' has no attribute {name!r}")
