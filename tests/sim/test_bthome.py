"""The simulated BLE thermometers' BTHome v2 frames decode, through the gateway's own BLE decoders and
its BLE-to-MQTT message parser, to the temperatures the simulation meant."""

from __future__ import annotations

import orjson
import pytest

from adapters.ble.decoders import DecoderState, KeyRing, decode_advertisement
from adapters.ble.mqtt_gateway import parse_gateway_message
from gateway.sim.bthome import bthome_v2_frame, theengs_message


@pytest.mark.parametrize("celsius", [21.37, -7.5, 0.0, 35.01])
def test_frame_decodes_to_the_temperature_through_the_mqtt_path(celsius: float) -> None:
    frame = bthome_v2_frame(packet_id=7, celsius=celsius, humidity_percent=48.25, battery_percent=91,
                            battery_volts=2.95)
    message = theengs_message("a4:c1:38:00:01:01", "ATC_000101", -61, frame)
    gateway, adv, _data = parse_gateway_message("home/TheengsGateway/BTtoMQTT/A4C138000101",
                                                orjson.dumps(message), 1000.0)
    assert gateway == "TheengsGateway" and adv is not None
    result = decode_advertisement(adv, KeyRing(), DecoderState())
    assert result.problems == []
    readings = {(u.capability, u.attribute): u.value for u in result.updates}
    assert readings[("temperature", "celsius")] == pytest.approx(celsius)
    assert readings[("humidity", "percent")] == pytest.approx(48.25)
    assert readings[("battery", "percent")] == 91
    assert readings[("battery", "volts")] == pytest.approx(2.95)
    assert result.device_id == "ble:a4:c1:38:00:01:01"


def test_frame_layout_is_bthome_v2() -> None:
    frame = bthome_v2_frame(packet_id=1, celsius=23.45, humidity_percent=50.0, battery_percent=100)
    # device info 0x40 (v2, unencrypted), packet id, battery, temperature 2345 = 0x0929 LE, humidity 5000
    assert frame.hex() == "40" "0001" "0164" "022909" "038813"


def test_out_of_range_temperature_is_refused() -> None:
    with pytest.raises(ValueError):
        bthome_v2_frame(packet_id=1, celsius=400.0, humidity_percent=50, battery_percent=100)
