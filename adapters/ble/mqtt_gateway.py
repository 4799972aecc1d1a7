"""BLE-to-MQTT gateways (OpenMQTTGateway, Theengs Gateway) as more receivers of the same BLE devices.

Each gateway publishes what it hears on ``<base>/BTtoMQTT/<MAC without colons>`` (OpenMQTTGateway:
``home/<gateway name>/BTtoMQTT/...``; Theengs: ``home/TheengsGateway/BTtoMQTT/...``) as JSON with the raw
advertisement (``servicedata`` hex + ``servicedatauuid``, ``manufacturerdata`` hex with the company id
first, little-endian) and/or fields the gateway decoded itself (``tempc``, ``hum``, ``batt``, ...).

Raw data goes through the same decoders as the local radio (``adapters.ble.decoders``), into the same
device ``ble:<mac>``: one device whichever receiver heard it. Gateway-decoded fields are used only when
there is no raw data we can decode. Every sighting, with the gateway's name and the area it is bound to
(``receivers``), is offered to the presence tags of ``[adapters.ble]``; each gateway's RSSI per device is
kept (``rssi_by_receiver``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.ble._bthome import BUTTON_EVENTS
from adapters.ble.adapter import _check_key
from adapters.ble.decoders import (
    Advertisement,
    KeyRing,
    device_id_for,
    normalize_mac,
    normalize_uuid,
    press_updates,
)
from adapters.ble.devices import BleDevices
from adapters.ble.shared import SharedBle, shared_for
from gateway.sdk import (
    AdapterContext,
    AdapterNotReadyError,
    Command,
    CommandResult,
    DeviceEventUpdate,
    HearthError,
    Unsubscribe,
    Update,
    capability,
)

__all__ = ["BleMqttGatewayAdapter", "BleMqttGatewayConfig", "decoded_field_events", "decoded_field_updates",
           "parse_gateway_message"]

# Theengs Decoder field -> (capability, attribute, conversion). Only fields whose unit is documented.
_DECODED_FIELDS: dict[str, tuple[str, str, Any]] = {
    "tempc": ("temperature", "celsius", float),
    "hum": ("humidity", "percent", float),
    "batt": ("battery", "percent", float),
    "volt": ("battery", "volts", float),
    "lux": ("illuminance", "lux", float),
    "pres": ("pressure", "hpa", float),
    "co2": ("air_quality", "co2_ppm", float),
    "pm25": ("air_quality", "pm25_ugm3", float),
    "pm10": ("air_quality", "pm10_ugm3", float),
}
# Theengs Decoder's true/false fields (Shelly BLU Door/Window `open`, BLU Motion `motion`).
_DECODED_FLAGS: dict[str, tuple[str, str]] = {"open": ("contact", "open"), "motion": ("occupancy", "occupied")}


class BleMqttGatewayConfig(BaseModel):
    """``[adapters.ble_mqtt]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    topics: list[str] = Field(default_factory=lambda: ["home/+/BTtoMQTT/+"])
    #: gateway name (the topic level before BTtoMQTT) -> area it is placed in
    receivers: dict[str, str] = Field(default_factory=dict)
    #: bind keys by MAC (shared with [adapters.ble]): 32 hex digits, or 24 for MiBeacon v2/v3
    keys: dict[str, str] = Field(default_factory=dict)
    expected_interval_s: float = Field(default=600.0, gt=0)

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        return {normalize_mac(mac): _check_key(key) for mac, key in value.items()}

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        for topic in value:
            if not topic or "\x00" in topic:
                raise ValueError("topics must be non-empty MQTT topic filters")
        return value


def parse_gateway_message(topic: str, payload: bytes, t: float) -> tuple[str, Advertisement | None, dict[str, Any]]:
    """(gateway name, raw advertisement or None, the JSON object). ValueError when it is not usable."""
    levels = topic.split("/")
    try:
        gateway = levels[levels.index("BTtoMQTT") - 1]
    except (ValueError, IndexError):
        gateway = levels[0]
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError("payload is not a JSON object")
    address = data.get("id") or data.get("mac") or levels[-1]
    if not isinstance(address, str):
        raise ValueError("no device address (id)")
    mac = normalize_mac(address)
    rssi = data.get("rssi")
    if isinstance(rssi, bool) or not isinstance(rssi, (int, float)):
        rssi = None
    name = data.get("name") if isinstance(data.get("name"), str) else None
    service_data: dict[str, bytes] = {}
    manufacturer_data: dict[int, bytes] = {}
    raw_service = data.get("servicedata")
    if isinstance(raw_service, str) and raw_service:
        uuid = data.get("servicedatauuid")
        if not isinstance(uuid, str) or not uuid:
            raise ValueError("servicedata without servicedatauuid")
        service_data[normalize_uuid(uuid)] = _unhex(raw_service, "servicedata")
    raw_manufacturer = data.get("manufacturerdata")
    if isinstance(raw_manufacturer, str) and raw_manufacturer:
        blob = _unhex(raw_manufacturer, "manufacturerdata")
        if len(blob) >= 2:
            manufacturer_data[int.from_bytes(blob[:2], "little")] = blob[2:]
    adv = None
    if service_data or manufacturer_data or rssi is not None:
        adv = Advertisement(mac, None if rssi is None else int(rssi), name, service_data, manufacturer_data, t)
    return gateway, adv, data


def _unhex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError as err:
        raise ValueError(f"{what} is not hex") from err


def decoded_field_updates(device_id: str, data: dict[str, Any]) -> tuple[list[Update], list[str]]:
    """Updates from a gateway's own decoded fields (Theengs Decoder), checked against the model."""
    updates: list[Update] = []
    problems: list[str] = []
    fields = dict(data)
    if "tempc" not in fields and isinstance(fields.get("tempf"), (int, float)) and not isinstance(
            fields.get("tempf"), bool):
        fields["tempc"] = round((float(fields["tempf"]) - 32) * 5 / 9, 2)  # °F -> °C
    for key, (cap, attr, convert) in _DECODED_FIELDS.items():
        value = fields.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            number = convert(value)  # OpenMQTTGateway has sent numbers as strings ({"lux":"253"})
        except (TypeError, ValueError):
            problems.append(f"{device_id}: {key}={value!r} is not a number")
            continue
        spec = capability(cap)
        problem = spec.attributes[attr].check(number) if spec is not None else "unknown capability"
        if problem is not None or number != number:
            problems.append(f"{device_id}: {key}: {problem or 'not a number'}")
            continue
        updates.append(Update(device_id, "main", cap, attr, number))
    for key, (cap, attr) in _DECODED_FLAGS.items():
        flag = fields.get(key)
        if flag is None:
            continue
        if not isinstance(flag, bool):
            problems.append(f"{device_id}: {key}={flag!r} is not true or false")
            continue
        updates.append(Update(device_id, "main", cap, attr, flag))
    return updates, problems


def decoded_field_events(device_id: str, data: dict[str, Any]) -> tuple[list[DeviceEventUpdate], list[str]]:
    """Button presses from a gateway's own decoded fields: Theengs Decoder's `press` (Shelly BLU buttons) is
    the BTHome button event value (1 press, 2 double, 4 long, 254 hold, …)."""
    press = data.get("press")
    if press is None or press == 0:
        return [], []
    event = BUTTON_EVENTS.get(press) if isinstance(press, int) and not isinstance(press, bool) else None
    if event is None:
        return [], [f"{device_id}: press={press!r} is not a button event we know"]
    kind, action = event
    event_data: dict[str, Any] = {"button": 1, "action": action}
    if kind is not None:
        event_data["kind"] = kind
    return [DeviceEventUpdate(device_id, "main", "button", "pressed", event_data)], []


class BleMqttGatewayAdapter:
    """BLE devices heard by OpenMQTTGateway / Theengs Gateway, as ``ble:<mac>`` devices."""

    needs_mqtt: ClassVar[bool] = True
    config_model: ClassVar[type[BaseModel]] = BleMqttGatewayConfig

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._config: BleMqttGatewayConfig | None = None
        self._shared: SharedBle | None = None
        self._devices: BleDevices | None = None
        self._unsubscribes: list[Unsubscribe] = []

    async def __aenter__(self) -> BleMqttGatewayAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, ctx: AdapterContext) -> None:
        try:
            config = BleMqttGatewayConfig.model_validate(ctx.config or {})
        except ValidationError as err:
            raise HearthError(f"[adapters.{ctx.name}]: {err}") from err
        if ctx.mqtt is None:
            raise AdapterNotReadyError("ble_mqtt needs the gateway's MQTT session ([mqtt] in config)")
        self._ctx, self._config = ctx, config
        shared = self._shared = shared_for(ctx.clock)
        shared.keys.update(KeyRing(config.keys))
        self._devices = BleDevices(ctx, shared, expected_interval_s=config.expected_interval_s)
        self._devices.start()
        for topic in config.topics:
            self._unsubscribes.append(ctx.mqtt.subscribe(topic, self._on_message))
        ctx.log.info("ble_mqtt: listening on %s (%d receivers bound to areas)", ", ".join(config.topics),
                     len(config.receivers))

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes.clear()
        if self._devices is not None:
            self._devices.stop()

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("rejected", "BLE sensors heard through MQTT gateways take no commands")

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        ctx, devices, shared, config = self._ctx, self._devices, self._shared, self._config
        if ctx is None or devices is None or shared is None or config is None:
            return
        if not payload:
            return
        try:
            gateway, adv, data = parse_gateway_message(topic, payload, ctx.clock.time())
        except ValueError as err:
            ctx.report_bad_input(f"ble_mqtt: {topic}: {err}")
            return
        try:
            self._apply(gateway, adv, data)
        except Exception as err:  # one message must never take the MQTT dispatch down
            ctx.log.exception("ble_mqtt: failed on %s", topic)
            ctx.report_bad_input(f"ble_mqtt: could not handle {topic!r}: {err!r}")

    def _apply(self, gateway: str, adv: Advertisement | None, data: dict[str, Any]) -> None:
        ctx, devices, shared, config = self._ctx, self._devices, self._shared, self._config
        assert ctx is not None and devices is not None and shared is not None and config is not None
        area = config.receivers.get(gateway)
        if adv is not None:
            shared.offer(adv, gateway, area)
            if adv.service_data or adv.manufacturer_data:
                result = devices.handle(adv, gateway)
                if result.decoded or result.duplicate or result.needs_key:
                    return
        address = data.get("id") or data.get("mac")
        if not isinstance(address, str):
            return
        device_id = device_id_for(normalize_mac(address))
        updates, problems = decoded_field_updates(device_id, data)
        events, event_problems = decoded_field_events(device_id, data)
        for event in events:
            updates.extend(press_updates(device_id, event.data))
        for problem in (*problems, *event_problems):
            ctx.report_bad_input(f"ble_mqtt ({gateway}): {problem}")
        if not updates and not events:
            return  # an advertiser we cannot read: not turned into a device
        model = data.get("model") if isinstance(data.get("model"), str) else None
        brand = data.get("brand") if isinstance(data.get("brand"), str) else None
        name = data.get("name") if isinstance(data.get("name"), str) and data.get("name") else None
        short = device_id.replace(":", "")[-4:].upper()
        devices.decoded_fields_device(device_id, name or f"{model or 'BLE sensor'} {short}", brand, model, updates,
                                      ctx.clock.time(), gateway, adv.rssi if adv is not None else None, events)

    def stats(self) -> dict[str, Any]:
        """What was not applied, by reason, with how many devices: the supervisor's optional adapter hook (shown
        in /healthz, without addresses; ``dropped.by_reason`` is exported by /metrics)."""
        drops = self.drops()
        return {"dropped": {"by_reason": drops["by_reason"], "devices": len(drops["by_device"])}}

    def drops(self) -> dict[str, Any]:
        """What was not applied, by reason and by device."""
        devices = self._devices
        return devices.drop_stats() if devices is not None else {"by_reason": {}, "by_device": {}}

    @property
    def devices(self) -> BleDevices | None:
        return self._devices
