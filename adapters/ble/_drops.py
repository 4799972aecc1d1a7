"""Why (part of) an advertisement was not applied: the reasons, and how loudly each is said.

Every advertisement that reaches a decoder (BTHome, MiBeacon, pvvx's custom format) is either applied or
reported with one of these reasons. The decoders stay pure: they only attach :class:`Drop` records to
their result; the devices layer (``adapters.ble.devices``) counts them per device and reason and says
them where a user can see them:

- ``PROBLEM``: the input is wrong or hostile (a failed decryption, a replayed counter, a truncated object):
  ``report_bad_input`` (the hub's counter, a rate-limited warning, ``hearth replay``'s errors);
- ``NOTE``: understood and deliberately not used (no bind key for an encrypted sensor, an object our model
  has no capability for, an unknown object id): a replay note and a rate-limited log line;
- ``COUNT``: normal radio traffic that carries nothing new (the repeats of one frame): counted only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Drop", "DropReason", "Said", "Severity"]


class DropReason(StrEnum):
    NO_KEY = "no_key"  # encrypted, and no bind key for this MAC
    DECRYPTION_FAILED = "decryption_failed"  # wrong bind key (or a key of the wrong kind), or a corrupted frame
    REPLAY = "replay"  # the encryption counter went back: a replayed advertisement
    DUPLICATE = "duplicate"  # a repeat of a frame already applied (same counter / packet id / bytes)
    DOWNGRADE = "downgrade"  # a plain-text frame from a device that has a bind key
    UNKNOWN_OBJECT = "unknown_object"  # an object id the format's reference parser does not know
    NOT_USED = "not_used"  # understood, but our model has no capability for it (or it means nothing here)
    TOO_SHORT = "too_short"  # truncated frame or object, an object of the wrong length
    INVALID_VALUE = "invalid_value"  # a value outside what the capability allows
    UNSUPPORTED = "unsupported"  # a format version or variant we do not decode (BTHome v1, MiBeacon mesh, ...)
    OTHER_DEVICE = "other_device"  # a frame that names another device's MAC (relayed or spoofed)
    NO_DATA = "no_data"  # a frame without readings (a MiBeacon pairing beacon)
    DECODER_ERROR = "decoder_error"  # a bug of ours; the advertisement is lost, the receiver is not


class Severity(StrEnum):
    PROBLEM = "problem"
    NOTE = "note"
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class Drop:
    reason: DropReason
    message: str
    severity: Severity
    # What the drop is about within its reason (an object id): notes are rate-limited per device, reason and
    # topic, so that a second unused object of a device is said even while the first one is quiet.
    topic: str = ""


# What the format parsers return: (reason, message, topic)
Said = tuple[DropReason, str, str]
