"""MQTT 3.1.1 packets from the broker's byte stream: the pure half of the session's read path.

paho-mqtt reads a packet with one ``recv`` for the command byte, one per byte of the remaining length
and one for the rest, then builds an ``MQTTMessage`` and its properties: about 16 us per message here,
as much as all of our processing of it. :func:`split_packets` instead takes whatever one ``recv``
returned (hundreds of packets under load), hands every QoS 0 PUBLISH (the whole of device traffic) to
``on_publish(topic, payload, retain)`` and every other packet (CONNACK, SUBACK, PINGRESP, QoS 1/2
PUBLISH, ...) whole to ``on_other(packet)``, in stream order, and says how far it got: the rest is an
incomplete packet to keep for the next read. The session hands those other packets to paho, which
keeps doing the protocol (acknowledgements, keepalive, reconnects).

Topics are decoded once per distinct topic: ``topics`` maps a topic's bytes to its text; the caller
bounds it. A topic that is empty or not UTF-8 (the spec forbids both) goes to ``on_bad_topic`` instead,
and the message is skipped.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MAX_REMAINING_LENGTH", "MqttProtocolError", "split_packets"]

# The largest remaining length four bytes can encode (the protocol's limit: 256 MB).
MAX_REMAINING_LENGTH = 268_435_455

PublishCallback = Callable[[str, bytes, bool], None]


class MqttProtocolError(ValueError):
    """The stream is not MQTT (a remaining length over four bytes, a topic longer than its packet)."""


def split_packets(
    buf: bytes,
    on_publish: PublishCallback,
    on_other: Callable[[bytes], None],
    topics: dict[bytes, str | None],
    on_bad_topic: Callable[[bytes], None],
) -> int:
    """Dispatch every complete packet in ``buf``; return the offset of the first incomplete one.

    Raises :class:`MqttProtocolError` on a stream that cannot be MQTT (the connection must then be
    dropped: nothing after it can be trusted).
    """
    n = len(buf)
    pos = 0
    while pos + 2 <= n:
        first = buf[pos]
        byte = buf[pos + 1]
        i = pos + 2
        if byte < 128:
            length = byte
        else:
            length = byte & 127
            shift = 7
            while True:
                if i >= n:
                    return pos
                byte = buf[i]
                i += 1
                length |= (byte & 127) << shift
                if byte < 128:
                    break
                shift += 7
                if shift > 21:
                    raise MqttProtocolError("remaining length longer than four bytes")
        end = i + length
        if end > n:
            return pos
        if first & 0xF6 == 0x30:  # PUBLISH (type 3) at QoS 0 (bits 2-1 clear); bit 3 DUP, bit 0 RETAIN
            if length < 2:
                raise MqttProtocolError("PUBLISH without a topic length")
            topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
            if topic_end > end:
                raise MqttProtocolError("PUBLISH topic longer than its packet")
            raw_topic = buf[i + 2:topic_end]
            topic = topics.get(raw_topic, "")
            if topic == "":
                try:
                    topic = raw_topic.decode("utf-8")
                except UnicodeDecodeError:
                    topic = None
                if topic:
                    topics[raw_topic] = topic
            if topic:
                on_publish(topic, buf[topic_end:end], bool(first & 1))
            else:
                on_bad_topic(raw_topic)
        else:
            on_other(buf[pos:end])
        pos = end
    return pos
