"""The embedded broker ([mqtt] mode = "embedded"): it starts, the gateway's session connects to it, devices'
messages published by an ordinary client reach the API; beyond loopback it insists on a password."""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as paho
import pytest

from gateway.app import Gateway
from gateway.broker import EmbeddedBroker
from gateway.config import MqttSection, parse_config
from gateway.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "z2m"
PLUG = "zigbee2mqtt:0x00158d0001db18f9"  # "Plug" in the fixture


def _connect(port: int, username: str | None = None, password: str | None = None) -> tuple[paho.Client, str]:
    """Connect a plain paho client (MQTT 3.1.1) and return it with the CONNACK's reason."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    result: dict[str, str] = {}
    done = threading.Event()

    def on_connect(c: paho.Client, u: Any, f: Any, reason_code: Any, p: Any) -> None:
        result["reason"] = "ok" if not reason_code.is_failure else str(reason_code)
        done.set()

    def on_disconnect(c: paho.Client, u: Any, f: Any, reason_code: Any, p: Any) -> None:
        result.setdefault("reason", f"disconnected: {reason_code}")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect("127.0.0.1", port, 10)
    client.loop_start()
    done.wait(10)
    return client, result.get("reason", "no answer")


def _close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "hearth.local"])
def test_beyond_loopback_without_credentials_is_a_config_error(host: str) -> None:
    text = f'[gateway]\nname = "x"\n\n[mqtt]\nmode = "embedded"\nembedded_host = "{host}"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "house.toml")
    problem = str(caught.value)
    assert "house.toml:4" in problem  # the [mqtt] line
    assert "username and password" in problem and "no default password" in problem


def test_beyond_loopback_with_credentials_is_accepted_and_the_password_is_never_echoed() -> None:
    config = parse_config('[mqtt]\nmode = "embedded"\nembedded_host = "0.0.0.0"\nusername = "z2m"\n'
                          'password = "s3cret-long"\n')
    assert config.mqtt.embedded and config.mqtt.embedded_host == "0.0.0.0"
    with pytest.raises(ConfigError) as caught:
        parse_config('[mqtt]\nmode = "embedded"\nusername = "z2m"\npassword = "s3cret-long"\ntls = true\n')
    assert "s3cret" not in str(caught.value)


def test_loopback_needs_no_credentials_and_external_mode_is_the_default() -> None:
    assert parse_config("").mqtt.mode == "external"
    assert parse_config('[mqtt]\nmode = "embedded"\nembedded_host = "::1"\n').mqtt.embedded
    with pytest.raises(ConfigError, match="port 0"):
        parse_config("[mqtt]\nport = 0\n")  # 'any free port' makes no sense for an external broker


def test_the_broker_refuses_settings_built_around_the_config_check() -> None:
    settings = MqttSection.model_construct(mode="embedded", embedded_host="0.0.0.0", port=0, username=None,
                                           password=None, enabled=True, tls=False)
    with pytest.raises(ConfigError, match="without authentication"):
        EmbeddedBroker(settings)


# ---------------------------------------------------------------------------------------------- broker


async def test_with_credentials_only_the_right_password_gets_in() -> None:
    settings = MqttSection(mode="embedded", port=0, username="hearth", password="correct horse")
    async with EmbeddedBroker(settings) as broker:
        assert broker.requires_auth
        results = {}
        for label, user, password in [("anonymous", None, None), ("wrong", "hearth", "nope"),
                                      ("right", "hearth", "correct horse")]:
            client, reason = await asyncio.to_thread(_connect, broker.port, user, password)
            results[label] = reason
            await asyncio.to_thread(_close, client)
    assert results["right"] == "ok"
    assert results["anonymous"] != "ok" and results["wrong"] != "ok"


async def test_gateway_on_the_embedded_broker_shows_zigbee2mqtt_devices(tmp_path: Path) -> None:
    config = parse_config(
        '[mqtt]\nmode = "embedded"\nport = 0\nreconnect_min_s = 0.1\n\n'
        f'[gateway]\ndata_dir = "{tmp_path}"\n\n[api]\nport = 0\n\n'
        '[adapters.ble]\nenabled = false\n\n[adapters.mdns]\nenabled = false\n'
    )
    out = io.StringIO()
    gateway = Gateway(config, out=out)
    run = asyncio.create_task(gateway.run(install_signal_handlers=False))
    try:
        await asyncio.wait_for(gateway.ready.wait(), timeout=20)
        assert gateway.broker is not None and gateway.broker.port > 0
        assert await gateway.mqtt.wait_connected(10), "the gateway's session connects to its own broker"
        assert f"listening on 127.0.0.1:{gateway.broker.port}" in out.getvalue()
        token = re.search(r"(hth_\S+)", out.getvalue())
        assert token, out.getvalue()

        def publish() -> None:
            client, reason = _connect(gateway.broker.port)
            assert reason == "ok"
            devices = (FIXTURES / "bridge_devices.json").read_bytes()
            client.publish("zigbee2mqtt/bridge/devices", devices, qos=1, retain=True).wait_for_publish(10)
            client.publish("zigbee2mqtt/Plug", json.dumps({"state": "ON", "power": 42.5, "energy": 1.5}),
                           qos=1).wait_for_publish(10)
            _close(client)

        await asyncio.to_thread(publish)
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            plug: dict[str, Any] = {}
            for _ in range(100):  # bounded: 10 s
                async with http.get(f"{gateway.api.url}/api/devices/{PLUG}") as response:
                    if response.status == 200:
                        plug = await response.json()
                        if plug["components"]["main"].get("power_meter"):
                            break
                await asyncio.sleep(0.1)
            assert plug["components"]["main"]["power_meter"]["watts"] == 42.5
            assert plug["components"]["main"]["on_off"] == {"on": True}
            async with http.get(f"{gateway.api.url}/api/devices") as response:
                assert len((await response.json())["devices"]) >= 15
        assert gateway.health()["mqtt"]["broker"] == "embedded"
    finally:
        gateway.request_stop()
        await asyncio.wait_for(run, timeout=20)
