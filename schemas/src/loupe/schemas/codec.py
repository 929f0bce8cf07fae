"""Decoding raw Kafka bytes into contract events, with precise, classified errors."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from loupe.schemas._base import MAX_EVENT_BYTES, Event
from loupe.schemas.events import ErrorKind

E = TypeVar("E", bound=Event)

_KIND_BY_ERROR_TYPE: dict[str, ErrorKind] = {
    "json_invalid": ErrorKind.MALFORMED_JSON,
    "json_type": ErrorKind.MALFORMED_JSON,
    "finite_number": ErrorKind.NON_FINITE,
    "greater_than": ErrorKind.OUT_OF_RANGE,
    "greater_than_equal": ErrorKind.OUT_OF_RANGE,
    "less_than": ErrorKind.OUT_OF_RANGE,
    "less_than_equal": ErrorKind.OUT_OF_RANGE,
    "string_too_long": ErrorKind.TOO_LARGE,
    "too_long": ErrorKind.TOO_LARGE,
    "union_tag_invalid": ErrorKind.UNKNOWN_TASK_TYPE,
    "string_type": ErrorKind.WRONG_TYPE,
    "int_type": ErrorKind.WRONG_TYPE,
    "float_type": ErrorKind.WRONG_TYPE,
    "bool_type": ErrorKind.WRONG_TYPE,
    "list_type": ErrorKind.WRONG_TYPE,
    "dict_type": ErrorKind.WRONG_TYPE,
    "model_type": ErrorKind.WRONG_TYPE,
    "int_from_float": ErrorKind.WRONG_TYPE,
    "datetime_type": ErrorKind.WRONG_TYPE,
    "model_attributes_type": ErrorKind.WRONG_TYPE,
}


class ContractError(ValueError):
    """Raw bytes did not decode into the expected event; ``kind`` says why, ``field`` where."""

    def __init__(self, kind: ErrorKind, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field


def _location(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"])


def _classify(error: ErrorDetails) -> ErrorKind:
    location = error["loc"]
    if location and location[-1] == "schema_version":
        return ErrorKind.UNSUPPORTED_VERSION
    if location and location[0] == "task_type" and error["type"] == "enum":
        return ErrorKind.UNKNOWN_TASK_TYPE
    if "label" in location and error["type"] == "value_error":
        return ErrorKind.INVALID_LABEL
    if error["type"] == "enum" and not isinstance(error.get("input"), str):
        return ErrorKind.WRONG_TYPE  # 12 for a unit is a wrong type; "furlong" a bad value
    return _KIND_BY_ERROR_TYPE.get(error["type"], ErrorKind.SCHEMA_VIOLATION)


def contract_error(exc: ValidationError) -> ContractError:
    """Turn a pydantic validation error into one readable, classified ``ContractError``."""
    errors = exc.errors(include_url=False)  # inputs are looked at, never put in the message
    first = errors[0]
    where = _location(first)
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    prefix = f"{where}: " if where else ""
    return ContractError(_classify(first), f"{prefix}{first['msg']}{more}", where or None)


def decode(model: type[E], raw: bytes | str | None) -> E:
    """Parse one serialized event strictly; raise ``ContractError`` with a precise reason."""
    if raw is None:
        raise ContractError(ErrorKind.MALFORMED_JSON, "empty record value (tombstone)")
    if len(raw) > MAX_EVENT_BYTES:
        raise ContractError(
            ErrorKind.TOO_LARGE, f"payload of {len(raw)} bytes exceeds {MAX_EVENT_BYTES} bytes"
        )
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise contract_error(exc) from None


def encode(event: Event) -> bytes:
    """Serialize one event to compact UTF-8 JSON."""
    return event.to_json_bytes()
