"""The OpenAPI document (``GET /api/openapi.json``): it names every route the app serves, with the roles
of the policy table, and schemathesis fuzzes a live gateway (a real server, a real SQLite store, a real
token) from it: no 5xx, and every answer matches its declared schema. Every non-public operation of the
document refuses a request without a token."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.api.accounts import PUBLIC, ROLES, allowed_roles
from gateway.api.ack import add_ack_routes
from gateway.api.app import _AUTH_FAILURES_KEY, ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.discovered import add_discovered_routes
from gateway.api.openapi import OPERATIONS, canonical_routes, openapi_document
from gateway.api.resident import add_resident_routes
from gateway.api.scenes import add_scene_routes
from gateway.clock import SystemClock
from gateway.devicemeta import DeviceMeta
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, Command, CommandResult, DeviceInfo, Update
from gateway.scenes.engine import SceneEngine
from gateway.scenes.notify import AckTokens, RecordingNotifier
from gateway.scenes.profile import load_profile_text
from gateway.store import Store
from tests.gateway.test_api import _make_hub
from tests.gateway.test_routes_auth import full_app
from tests.gateway.test_things import DEVICES
from tests.scenes.test_scene_api import LAMP, PROFILE

# Test cases per operation and phase: 51 operations x (coverage + fuzzing) take ~20 s here (4,000 requests).
MAX_EXAMPLES = 40
# The whole schemathesis run: a bound, not an expectation.
FUZZ_TIMEOUT_S = 240.0


def test_every_route_has_an_entry_in_the_table(tmp_path: Path) -> None:
    served = {(method, path) for method, path, _ in canonical_routes(full_app(_make_hub(), TokenStore(
        tmp_path / "tokens.json")))}
    missing = sorted(served - set(OPERATIONS))
    assert not missing, f"routes without an entry in gateway.api.openapi.OPERATIONS: {missing}"
    stale = sorted(set(OPERATIONS) - served)
    assert not stale, f"OPERATIONS names routes the app does not serve: {stale}"


def test_the_document_describes_every_route_with_its_roles_and_bodies(tmp_path: Path) -> None:
    app = full_app(_make_hub(), TokenStore(tmp_path / "tokens.json"))
    doc = openapi_document(app)
    assert doc["openapi"] == "3.1.0"
    operations = {(method.upper(), path): op for path, item in doc["paths"].items() for method, op in item.items()}
    assert set(operations) == {(m, p) for m, p, _ in canonical_routes(app)}
    ids = [op["operationId"] for op in operations.values()]
    assert len(ids) == len(set(ids))
    for (method, path), op in operations.items():
        assert op["summary"], (method, path)  # every handler has a docstring
        roles = allowed_roles(method, path) if path.startswith("/api") else PUBLIC
        if roles == PUBLIC:
            assert op["x-roles"] == PUBLIC and op["security"] == []
        else:
            assert op["x-roles"] == [r for r in ROLES if r in roles]
            assert "401" in op["responses"] and op["security"] == [{"bearer": []}, {"session": []}]
        for status in op["responses"]:
            assert status in ("4XX", "5XX") or 100 <= int(status) < 600
        body = OPERATIONS[(method, path)].body
        if body is not None:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert doc["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"].keys() == \
                body.model_json_schema()["properties"].keys()
    # The body models' schemas are pydantic's: the command's args and bounds come through.
    command = doc["components"]["schemas"]["CommandBody"]
    assert command["additionalProperties"] is False and command["required"] == ["capability", "command"]
    # Every $ref resolves.
    text = json.dumps(doc)
    for name in {part.split('"')[0] for part in text.split('"#/components/schemas/')[1:]}:
        assert name in doc["components"]["schemas"], name


def test_the_document_is_valid_openapi_3_1(tmp_path: Path) -> None:
    # The OpenAPI Initiative's own schema of 3.1 documents, as the pinned schemathesis ships it (taken from
    # OAI/OpenAPI-Specification, schemas/v3.1/schema.yaml), and every schema in the document is valid 2020-12.
    import jsonschema
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    doc = openapi_document(full_app(_make_hub(), TokenStore(tmp_path / "tokens.json")))
    errors = list(jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(doc))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for item in doc["paths"].values():
        for op in item.values():
            for answer in op["responses"].values():
                for media in answer.get("content", {}).values():
                    jsonschema.Draft202012Validator.check_schema(media.get("schema", {}))


# -------------------------------------------------------------------- a live gateway


@dataclass
class Live:
    url: str
    token: str
    hub: Hub
    app: web.Application
    engine: SceneEngine


def _live_hub() -> Hub:
    """The Thing Descriptions' devices and the scene tests' lamp; every command is confirmed at once (none
    hangs: a fuzzer's request must not wait for a device that never answers)."""
    hub = Hub(SystemClock())
    for info in (*DEVICES, DeviceInfo(LAMP, "Lamp", "fake", {"main": {"on_off": CapabilitySupport(
            frozenset({"on"}), frozenset({"on", "off", "toggle"}))}})):
        hub.upsert_device(info, "fake")
        hub.set_available(info.id, True)
    hub.apply([Update(DEVICES[0].id, "main", "on_off", "on", False)])

    async def handler(command: Command) -> CommandResult:
        return CommandResult("confirmed", "done")

    hub.set_command_handler("fake", handler)
    return hub


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    hub = _live_hub()
    async with Store(tmp_path / "hearth.db", hub.clock) as store:
        store.attach(hub)
        tokens = TokenStore(tmp_path / "tokens.json")
        token, _ = tokens.create("fuzzer")
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        app = create_app(hub, tokens, health=lambda: {"status": "ok"}, store=store, device_meta=meta,
                         command_timeout_s=0.5)
        # The scene tests' profile: a scene to run, one that raises an alert, a disabled one.
        engine = SceneEngine(hub, [load_profile_text(PROFILE, "home.toml")], notifier=RecordingNotifier())
        add_scene_routes(app, engine)
        add_discovered_routes(app, lambda: None)
        add_resident_routes(app)
        add_ack_routes(app, engine, AckTokens(hub.clock, store.kv("ack_tokens")))
        # The 401 check sends many requests without a token: no tarpit for them here.
        app[_AUTH_FAILURES_KEY].limiter.max_failures = 1_000_000
        async with engine, ApiServer(app, "127.0.0.1", 0) as server:
            yield Live(server.url, token, hub, app, engine)


async def test_the_document_is_served_to_readers(live: Live) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(live.url + "/api/openapi.json",
                               headers={"Authorization": f"Bearer {live.token}"}) as response:
            assert response.status == 200
            doc = await response.json()
        async with session.get(live.url + "/api/openapi.json") as response:
            assert response.status == 401
    assert "/api/openapi.json" in doc["paths"] and "/api/things/{id}" in doc["paths"]
    assert doc == json.loads(json.dumps(openapi_document(live.app)))


def _concrete(path: str) -> str:
    return path.replace("{id}", DEVICES[0].id).replace("{path}", "app.js").replace("{name}", "x") \
        .replace("{area}", "x").replace("{token}", "x")


async def test_every_operation_that_needs_a_credential_refuses_a_request_without_one(live: Live) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(live.url + "/api/openapi.json",
                               headers={"Authorization": f"Bearer {live.token}"}) as response:
            doc = await response.json()
        checked = 0
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if op["security"] == []:
                    continue
                body = {"name": "x"} if "requestBody" in op else None
                for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {live.token}"}):
                    async with session.request(method.upper(), live.url + _concrete(path), json=body,
                                               headers=headers) as response:
                        assert response.status == 401, (method, path, headers, response.status)
                        assert response.headers["WWW-Authenticate"].startswith("Bearer")
                checked += 1
        assert checked >= 35, checked


def _aimed(doc: dict[str, Any], ids: dict[str, list[str]]) -> dict[str, Any]:
    """The document with the ``{id}`` of the routes under each prefix narrowed to the live gateway's ids (its
    devices, scenes, alerts): random ids only ever meet a 404, and the input checks are behind the ids."""
    doc = json.loads(json.dumps(doc))
    for path, item in doc["paths"].items():
        known = next((values for prefix, values in ids.items() if path.startswith(prefix + "/{id}")), None)
        if known is None:
            continue
        for op in item.values():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "id":
                    parameter["schema"] = {"type": "string", "enum": known}
    return doc


async def test_schemathesis_finds_no_server_error_and_no_answer_off_its_schema(live: Live, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {live.token}"}
    async with aiohttp.ClientSession() as session, session.get(live.url + "/api/openapi.json",
                                                                headers=auth) as response:
        doc = await response.json()
    # An alert to acknowledge and resolve (the help scene raises one).
    live.engine.run_now("home.help")
    for _ in range(100):  # the scene runs as a task: bounded wait for its alert
        if live.engine.list_alerts(state=None):
            break
        await asyncio.sleep(0.02)
    ids = {"/api/devices": sorted(live.hub.devices), "/api/things": sorted(live.hub.devices),
           "/api/scenes": sorted(live.engine.scenes),
           "/api/alerts": [alert["id"] for alert in live.engine.list_alerts(state=None)] or ["none"]}
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(_aimed(doc, ids)), encoding="utf-8")
    args = [
        sys.executable, "-m", "schemathesis.cli", "run", str(schema), "--url", live.url,
        "--header", f"Authorization: Bearer {live.token}",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(MAX_EXAMPLES), "--phases", "examples,coverage,fuzzing",
        # Our token on every request: generating values for the security schemes would only test wrong tokens
        # (the 401 test does that) and run into the per-address tarpit.
        "--generation-with-security-parameters", "false",
        "--seed", "20261206", "--generation-database", "none", "--request-timeout", "20", "--no-color",
        # One worker: several threads made CPython 3.11's compile() fail inside schemathesis ("AST constructor
        # recursion depth mismatch"), and the run is quick as it is.
        "--workers", "1",
        # The WebSocket takes an upgrade, not a request schemathesis can make (the 401 test covers it); a token
        # id read from GET /api/tokens would revoke the run's own token and turn the rest into 401s.
        "--exclude-path", "/api/ws", "--exclude-operation-id", "delete_api_tokens_id",
    ]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
                                                env={**os.environ, "NO_COLOR": "1"})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), FUZZ_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-20000:]
    assert "Authentication failed" not in text, text[-5000:]  # the token held to the end
    async with aiohttp.ClientSession() as session, session.get(live.url + "/api/me", headers=auth) as response:
        assert response.status == 200
