"""The simulated house's traffic as a capture file (DESIGN.md contract 4), for ``hearth replay``.

The model runs without waiting: a simulated day is written in well under a second. Nothing answers
the scenes' commands (there is no gateway in the loop), so what a replay shows as ``actions`` is what
the profiles would have sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import orjson

from gateway.clock import iso_utc
from gateway.sim.model import HouseModel, Message

__all__ = ["capture_line", "write_capture"]

# Steps of the model between writes: bounds memory for a long capture (one step's messages at a time).
_STEP_S = 3600.0


def capture_line(message: Message) -> bytes:
    """One JSON Lines record: ``{"t", "source": "mqtt", "topic", "payload", "retain"}``."""
    try:
        payload: object = orjson.loads(message.payload)
    except orjson.JSONDecodeError:
        payload = message.payload.decode("utf-8", "replace")
    return orjson.dumps({"t": iso_utc(message.t), "source": "mqtt", "topic": message.topic, "payload": payload,
                         "retain": message.retain}) + b"\n"


def write_capture(model: HouseModel, path: Path | str | IO[bytes], *, duration_s: float) -> int:
    """Start ``model`` and write everything it publishes for ``duration_s`` simulated seconds. Returns the
    number of messages written."""
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    if isinstance(path, (str, Path)):
        with Path(path).open("wb") as file:
            return write_capture(model, file, duration_s=duration_s)
    out = path
    count = 0
    start = model.now
    for message in model.start():
        out.write(capture_line(message))
        count += 1
    t = start
    end = start + duration_s
    while t < end:
        t = min(end, t + _STEP_S)
        for message in model.advance_to(t):
            out.write(capture_line(message))
            count += 1
    return count
