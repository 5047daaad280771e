"""The gRPC-web wire format: 5-byte frames, the trailer frame, base64 text mode, grpc-timeout."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable

TRAILER_FLAG = 0x80
COMPRESSED_FLAG = 0x01
_HEADER = struct.Struct(">BI")
_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class FrameError(ValueError):
    """The request body is not one well-formed, uncompressed gRPC-web message frame."""


def encode_frame(payload: bytes, *, flag: int = 0) -> bytes:
    return _HEADER.pack(flag, len(payload)) + payload


def encode_trailer(pairs: Iterable[tuple[str, str]]) -> bytes:
    """The trailer frame: HTTP/1-style `name: value` lines, flag 0x80."""
    block = "".join(f"{name}: {value}\r\n" for name, value in pairs)
    return encode_frame(block.encode("ascii", "replace"), flag=TRAILER_FLAG)


def decode_request(body: bytes) -> bytes:
    """The single message of a unary or server-streaming request (gRPC-web sends exactly one)."""
    if len(body) < _HEADER.size:
        raise FrameError("the body is shorter than a gRPC-web frame header")
    flag, length = _HEADER.unpack_from(body)
    if flag & TRAILER_FLAG:
        raise FrameError("a request cannot carry a trailer frame")
    if flag & COMPRESSED_FLAG:
        raise FrameError("compressed request messages are not supported")
    if flag:
        raise FrameError(f"unknown frame flag 0x{flag:02x}")
    if len(body) != _HEADER.size + length:
        raise FrameError("the frame length does not match the body (exactly one message frame expected)")
    return body[_HEADER.size :]


def decode_text(body: bytes) -> bytes:
    """Base64 of -text requests; concatenated padded chunks are allowed, whitespace is ignored."""
    compact = b"".join(body.split())
    out = bytearray()
    try:
        while compact:
            end = compact.find(b"=")
            if end < 0:
                chunk, compact = compact, b""
            else:
                end += 1
                while end < len(compact) and compact[end : end + 1] == b"=":
                    end += 1
                chunk, compact = compact[:end], compact[end:]
            out += base64.b64decode(chunk, validate=True)
    except binascii.Error as exc:
        raise FrameError("the grpc-web-text body is not valid base64") from exc
    return bytes(out)


def parse_timeout(value: str | None, *, cap: float | None = None) -> float | None:
    """Seconds from a `grpc-timeout` header (e.g. `250m`, `5S`), at most `cap`; None when absent.

    The header allows up to 99999999 hours, which overflows gRPC's deadline arithmetic into an
    immediate DEADLINE_EXCEEDED: a cap keeps a legal header meaning "a long time"."""
    if value is None:
        return None
    match = _TIMEOUT.match(value.strip())
    if match is None:
        raise FrameError(f"grpc-timeout {value!r} is not 1-8 digits and a unit (H, M, S, m, u, n)")
    seconds = int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]
    return seconds if cap is None else min(seconds, cap)
