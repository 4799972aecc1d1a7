"""How the API answers: JSON bodies, and the error shapes every route shares (``{"error", "field", "reason"}``)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.errors import CommandErrorReason

__all__ = ["MAX_BODY_BYTES"]

# Commands are a few hundred bytes; 64 KiB leaves room for any real body and caps what a bad
# client can make us buffer and parse.
MAX_BODY_BYTES = 64 * 1024


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status=status)


def _no_device(device_id: str) -> web.Response:
    status, body = _no_device_body(device_id)
    return _json(body, status=status)


def _no_device_body(device_id: str) -> tuple[int, dict[str, Any]]:
    return 404, {"error": f"no device {device_id!r}", "field": "device_id",
                 "reason": CommandErrorReason.UNKNOWN_DEVICE.value}


def _pydantic_error(err: ValidationError, model: type[BaseModel]) -> web.Response:
    status, body = _pydantic_problems(err, model)
    return _json(body, status=status)


def _pydantic_problems(err: ValidationError, model: type[BaseModel]) -> tuple[int, dict[str, Any]]:
    """A 400 body naming every bad field (the first one also as ``field``/``reason``)."""
    problems = []
    for item in err.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in item["loc"]) or "body"
        if item["type"] == "extra_forbidden":
            message = f"unknown field (fields: {', '.join(model.model_fields)})"
        elif item["type"] == "missing":
            message = "required"
        else:
            message = item["msg"]
        problems.append({"field": field, "message": message, "reason": item["type"]})
    first = problems[0]
    return 400, {"error": f"{first['field']}: {first['message']}", "field": first["field"],
                 "reason": first["reason"], "errors": problems}
