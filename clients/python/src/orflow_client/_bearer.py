"""The check that a token can be sent as `authorization: Bearer <token>`, made when a client is built.

A token that cannot be (a pasted placeholder, a "Bearer " prefix, a stray newline) would otherwise
fail deep inside gRPC on the first call, as an untyped "Illegal header value".
"""

from __future__ import annotations

import re
import unicodedata

import grpc
from orflow.v1 import error_reason_pb2

from .errors import REASON_PREFIX, Unauthenticated

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9\-._~+/]")
# The wire string of the generated reason, never typed by hand.
_TOKEN_MALFORMED = error_reason_pb2.ErrorReason.Name(error_reason_pb2.ERROR_REASON_TOKEN_MALFORMED)
_TOKEN_MALFORMED = _TOKEN_MALFORMED.removeprefix(REASON_PREFIX)
_WHAT_TO_DO = (
    "pass the token itself (what your identity provider or `orflow token --role patient --patient ID` issued, "
    "without 'Bearer '), or token=None to call without one"
)


class InvalidToken(Unauthenticated, ValueError):
    """The token given to a client cannot be a bearer token; raised when the client is built, before any call."""

    def __init__(self, problem: str) -> None:
        super().__init__(grpc.StatusCode.UNAUTHENTICATED, f"{problem}: {_WHAT_TO_DO}", reason=_TOKEN_MALFORMED)


def _describe(char: str) -> str:
    name = unicodedata.name(char, "a control character")
    return f"{char!r} ({name}, U+{ord(char):04X})"


def _problem(token: str) -> str:
    if not token:
        return "the token is empty"
    if token[:7].lower() == "bearer ":
        return "the token starts with 'Bearer ' (the client adds that itself)"
    illegal = [(index, char) for index, char in enumerate(token) if char != "=" and not _TOKEN_CHAR.fullmatch(char)]
    if illegal:
        index, char = illegal[0]
        return f"the token holds {_describe(char)} at position {index}, which a bearer token cannot hold"
    return f"the token has '=' at position {token.index('=')}, which a bearer token holds only at its end"


def check_token(token: str | None) -> None:
    """Raises `InvalidToken` unless `token` is None (no token) or a well-formed bearer token."""
    if token is not None and not _B64TOKEN.fullmatch(token):
        raise InvalidToken(_problem(token))
