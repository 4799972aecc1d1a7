"""The one error hierarchy of the gateway: every error we raise on purpose is a HearthError."""

from __future__ import annotations

from enum import StrEnum


class HearthError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(HearthError):
    """A config file or profile is wrong. Carries where (file, line, key) and what was expected:
    ``problems``, a list of :class:`ConfigProblem`, one line each in the message."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigProblem:
    """One problem of a config file or profile: the file, the line (None when not known), the dotted key
    (``mqtt.port``; empty for the whole file) and what is wrong or was expected. Printed as
    ``file:line: key: message``."""

    __slots__ = ("file", "key", "line", "message")

    def __init__(self, file: str, line: int | None, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        """The problem as a JSON object: ``{"file", "line", "key", "message"}``."""
        return {"file": self.file, "line": self.line, "key": self.key, "message": self.message}


class CommandErrorReason(StrEnum):
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_COMPONENT = "unknown_component"
    UNKNOWN_CAPABILITY = "unknown_capability"
    UNSUPPORTED_CAPABILITY = "unsupported_capability"
    UNKNOWN_COMMAND = "unknown_command"
    UNSUPPORTED_COMMAND = "unsupported_command"
    MISSING_ARGUMENT = "missing_argument"
    UNKNOWN_ARGUMENT = "unknown_argument"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    NOT_ALLOWED = "not_allowed"


class CommandValidationError(HearthError):
    """A command does not fit the capability model or the device. ``field`` names the bad part."""

    def __init__(self, reason: CommandErrorReason, field: str, message: str) -> None:
        self.reason = reason
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class DeviceUnavailableError(HearthError):
    """The device is known but currently offline, so a command cannot reach it."""


class AdapterNotReadyError(HearthError):
    """Raised by an adapter's ``start`` when what it needs is not there yet; it is retried with back-off."""


class CodecError(HearthError):
    """A device message could not be decoded. The message says what was wrong with it."""


class StoreError(HearthError):
    """The state database could not be opened or written."""
