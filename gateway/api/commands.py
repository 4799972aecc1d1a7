"""A command from the API, validated and executed: shared by ``POST /api/devices/{id}/commands`` and the
WebSocket's ``command`` message, so that both check the same things and answer with the same statuses."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.api.responses import _no_device_body, _pydantic_problems
from gateway.errors import CommandErrorReason, CommandValidationError
from gateway.hub import Hub
from gateway.model.types import Command, CommandResult

__all__ = ["CommandBody", "run_command"]

log = logging.getLogger("hearth.api")

# hub.execute waits up to timeout_s for the device to confirm, but the adapter's own send is not
# bounded by it: a hung adapter must not hang the request, so the whole call gets this much more.
ADAPTER_GRACE_S = 10.0

_STATUS_HTTP: dict[str, int] = {
    "confirmed": 200,
    "sent": 202,
    "timeout": 202,
    "unavailable": 409,
    "rejected": 400,
    "failed": 502,
}


class CommandBody(BaseModel):
    """The body of ``POST /api/devices/{id}/commands``."""

    # strict: a JSON API gets JSON types; "5" is not a number and 1 is not a string.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    component: str = Field("main", min_length=1, max_length=64)
    capability: str = Field(min_length=1, max_length=128)
    command: str = Field(min_length=1, max_length=64)
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(None, gt=0, le=60, allow_inf_nan=False)


async def run_command(hub: Hub, device_id: str, data: Any, default_timeout_s: float, *,
                      source: str) -> tuple[int, dict[str, Any]]:
    """Validate and execute one command; the HTTP status and JSON body that say what became of it.

    Shared by ``POST /api/devices/{id}/commands`` and the WebSocket's ``command`` message, so both
    check the same things and answer with the same statuses.
    """
    if device_id not in hub.devices:
        return _no_device_body(device_id)
    if not isinstance(data, dict):
        return 400, {"error": "the body must be a JSON object", "field": "body", "reason": "wrong_type"}
    try:
        body = CommandBody.model_validate(data)
    except ValidationError as err:
        return _pydantic_problems(err, CommandBody)
    command = Command(device_id, body.component, body.capability, body.command, dict(body.args), source=source)
    timeout_s = body.timeout_s if body.timeout_s is not None else default_timeout_s
    try:
        async with asyncio.timeout(timeout_s + ADAPTER_GRACE_S):
            result = await hub.execute(command, timeout_s)
    except CommandValidationError as err:
        status = 404 if err.reason == CommandErrorReason.UNKNOWN_DEVICE else 400
        return status, {"error": err.message, "field": err.field, "reason": str(err.reason)}
    except TimeoutError:
        log.warning("adapter did not answer %s within %g s", command, timeout_s + ADAPTER_GRACE_S)
        result = CommandResult("failed", "the adapter did not answer in time")
        return 504, _result_body(result, command)
    if result.details.get("transport") == "down":
        # Not the device's fault and not the caller's: the gateway cannot reach it now; try again later.
        return 503, _result_body(result, command)
    return _STATUS_HTTP.get(result.status, 502), _result_body(result, command)


def _result_body(result: CommandResult, command: Command) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": result.status,
        "message": result.message,
        "expected": result.expected,
        "command": {
            "device_id": command.device_id,
            "component": command.component,
            "capability": command.capability,
            "command": command.command,
            "args": command.args,
            "source": command.source,
        },
    }
    if result.details:
        body["details"] = result.details
    return body
