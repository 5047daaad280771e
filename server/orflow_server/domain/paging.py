"""Opaque page tokens for keyset pagination.

A token carries the sort key of the last row served and a fingerprint of the
filters, so a token replayed with other filters is refused instead of
silently skipping rows. Keyset (not OFFSET) keeps deep pages as cheap as the
first one.

The fingerprint hashes an explicit encoding: a version byte, the listing's
name and the filter fields each listing names itself (domain/filters.py),
never Python's repr of an object. Tokens that clients hold stay valid until
that encoding changes on purpose (bump FILTER_ENCODING_VERSION), and a test
pins known tokens so it cannot change by accident.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar, Protocol

from .errors import FieldViolation, InvalidArgumentError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Real tokens are under 100 characters; a cap keeps hostile ones from costing anything.
MAX_TOKEN_LENGTH = 512
# Ids and microsecond times in keys stay below this (int64 fits it with room to spare).
MAX_KEY_INT = 2**62

Key = Sequence[str | int]

FILTER_ENCODING_VERSION = 1
"""The first byte of every filter encoding; bumping it retires every token issued before.

Filters added later join the encoding only when set (ListSlots' site_id, day and show_retired,
ListDoctors' show_retired, ListBookings' slot_ids), so tokens issued before them stay valid.
"""

FilterValue = str | int | bool | datetime | None


class PageFilters(Protocol):
    """A listing's filters as a page token sees them: the listing's name and its named fields."""

    listing: ClassVar[str]

    def token_fields(self) -> Mapping[str, FilterValue]: ...


def page_size_or_default(page_size: int) -> int:
    """Follows AIP-158: 0 means the default, oversized requests are coerced down."""
    if page_size < 0:
        raise InvalidArgumentError([FieldViolation("page_size", "must not be negative")])
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _canonical(value: FilterValue) -> str | int | bool | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def filter_encoding(filters: PageFilters) -> bytes:
    """The version byte, then canonical JSON of [listing, [[name, value], ...] sorted by name]."""
    fields = sorted((name, _canonical(value)) for name, value in filters.token_fields().items())
    body = json.dumps([filters.listing, fields], ensure_ascii=True, separators=(",", ":"))
    return bytes([FILTER_ENCODING_VERSION]) + body.encode()


def _fingerprint(filters: PageFilters) -> str:
    return hashlib.sha256(filter_encoding(filters)).hexdigest()[:16]


def encode_page_token(key: Key, filters: PageFilters) -> str:
    payload = json.dumps({"k": list(key), "f": _fingerprint(filters)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _is_plausible(part: object) -> bool:
    """Tokens are not signed: a forged key must not reach SQL or date arithmetic out of range."""
    if isinstance(part, int):
        return 0 <= part <= MAX_KEY_INT
    return isinstance(part, str) and len(part) <= 200 and part.isprintable()


def decode_page_token(token: str, filters: PageFilters, *, shape: tuple[type, ...]) -> list[str | int] | None:
    """The key after which the page starts, or None for the first page.

    `shape` gives the type of each part of the key, e.g. (int, int).
    """
    if not token:
        return None
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidArgumentError([FieldViolation("page_token", "is not a token this API issued")])
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key = payload["k"]
        fingerprint = payload["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError, RecursionError) as exc:
        raise InvalidArgumentError([FieldViolation("page_token", "is not a token this API issued")]) from exc
    if not isinstance(key, list):
        raise InvalidArgumentError([FieldViolation("page_token", "is not a token this API issued")])
    if fingerprint != _fingerprint(filters):
        raise InvalidArgumentError(
            [FieldViolation("page_token", "was issued for different filters; start again without it")]
        )
    if len(key) != len(shape) or not all(
        type(part) is kind and _is_plausible(part) for part, kind in zip(key, shape, strict=True)
    ):
        raise InvalidArgumentError([FieldViolation("page_token", "is not a token this API issued")])
    return list(key)
