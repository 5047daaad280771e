"""Every RPC of every OR Flow service, read from the proto descriptors, and hypothesis strategies for its requests.

Nothing here lists a method or a field by name: a new RPC, message or field is fuzzed without an edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orflow.v1
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

F = FieldDescriptor
MAX_DEPTH = 3


@dataclass(frozen=True)
class Rpc:
    service: str  # full name, e.g. orflow.v1.BookingService
    name: str
    request: Descriptor
    is_server_streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def label(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.name}"


def all_rpcs() -> list[Rpc]:
    """Every method of every service in the generated `orflow.v1` modules."""
    rpcs: dict[str, Rpc] = {}
    for module_info in pkgutil.iter_modules(orflow.v1.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"orflow.v1.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rpc = Rpc(service.full_name, method.name, method.input_type, method.server_streaming)
                rpcs[rpc.path] = rpc
    return [rpcs[path] for path in sorted(rpcs)]


_INT_RANGES = {
    **dict.fromkeys((F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((F.TYPE_UINT32, F.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((F.TYPE_UINT64, F.TYPE_FIXED64), (0, 2**64 - 1)),
}

# Strings a server meets at its edges: empty, blanks, NUL and control characters, SQL and path noise, very long
# (past ORFLOW_MAX_REQUEST_BYTES), and ids that exist in the fuzz world.
_EDGE_STRINGS = [
    "",
    " ",
    "\x00",
    "\t\n",
    "p-1",
    "p-2",
    "'; DROP TABLE bookings; --",
    "../..",
    "%s",
    "é" * 70,
    "x" * 300,
    "y" * 70_000,
    "CREATE_BOOKING",
    "slot",
    "booking",
    "1",
    "-1",
    "AAAA",
    "Zm9v",
]


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    extremes = sorted({low, high, 0, 1, max(low, -1), high // 2})
    return st.one_of(st.sampled_from(extremes), st.integers(0, 12), st.integers(low, high))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type in _INT_RANGES:
        return _ints(*_INT_RANGES[field.type])
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(width=32 if field.type == F.TYPE_FLOAT else 64)
    if field.type == F.TYPE_STRING:
        return st.one_of(st.sampled_from(_EDGE_STRINGS), st.text(max_size=40))
    if field.type == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type == F.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), _ints(-(2**31), 2**31 - 1))  # proto3 enums are open
    raise AssertionError(f"no strategy for {field.full_name} (type {field.type})")


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    if field.type == F.TYPE_MESSAGE:
        if depth >= MAX_DEPTH:
            return None
        if field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            values = _field(value, depth + 1)
            return None if values is None else st.dictionaries(_scalar(key), values, max_size=3)
        inner = messages(field.message_type, depth + 1)
    else:
        inner = _scalar(field)
    if field.is_repeated:
        return st.lists(inner, max_size=4)
    return inner


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    target = getattr(message, field.name)
    if field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        for key, item in value.items():
            if isinstance(item, Message):
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        if field.type == F.TYPE_MESSAGE:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif field.type == F.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


def _builder(descriptor: Descriptor) -> Callable[[dict[str, Any]], Message]:
    cls = message_factory.GetMessageClass(descriptor)

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for name, value in values.items():  # in a oneof, the last field set wins, as on the wire
            _set(message, descriptor.fields_by_name[name], value)
        return message

    return build


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `descriptor` with any subset of its fields set to random or extreme values (nested too)."""
    optional = {f.name: s for f in descriptor.fields if (s := _field(f, depth)) is not None}
    return st.fixed_dictionaries({}, optional=optional).map(_builder(descriptor))


@st.composite
def _truncated(draw: st.DrawFn, descriptor: Descriptor) -> bytes:
    whole = draw(messages(descriptor)).SerializeToString()
    return whole[: draw(st.integers(0, max(len(whole) - 1, 0)))]


def request_bytes(descriptor: Descriptor) -> st.SearchStrategy[tuple[str, bytes]]:
    """(kind, bytes on the wire): a random message, random bytes, or a serialized message cut short."""
    return st.one_of(
        messages(descriptor).map(lambda m: ("message", m.SerializeToString())),
        st.binary(max_size=256).map(lambda b: ("random_bytes", b)),
        _truncated(descriptor).map(lambda b: ("truncated", b)),
    )
