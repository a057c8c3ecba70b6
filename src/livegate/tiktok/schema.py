"""TikTok's event messages as google.protobuf (upb) classes, built once per process from the
TikTokLive proto classes' own metadata (betterproto2 dataclass fields: names, numbers, proto
types, repeated, optional, maps, enums, nested classes), and their JSON form: the same dict
betterproto2's `to_dict(casing=SNAKE)` gives, at a fraction of its cost (docs/benchmarks.md,
"Managed event stream"). TikTokLiveProto ships no .proto files or descriptors, hence the
conversion.

Where protobuf's JSON printer (`json_format.MessageToDict`) and betterproto2 part ways, the
descriptor declares a wire-compatible type that keeps what betterproto2 shows, and `_Fix`
turns it back after printing:
- float and double fields are declared fixed32 and fixed64 (same wire format): the printer
  rounds a float to its shortest form (0.1) where betterproto2 gives the double it unpacks
  (0.10000000149011612), and it prints -0.0, which betterproto2 omits as a default;
- map fields are declared as repeated entry messages (a map's wire format): upb keeps a map in
  hash order, and prints int32 keys as strings, where betterproto2 keeps the order the entries
  came in and the key's own type.

The dict is betterproto2's for any payload an encoder of this schema writes
(tests/test_events_schema.py compares them). upb reads the wire as protobuf specifies, and so
parts from betterproto2 only on payloads no such encoder writes: a truncated payload, or a
field number 0, is an error (betterproto2 kept what it had read); a singular message field that
comes twice is merged (betterproto2 kept the last); a field whose wire type does not match the
schema, or a group, is skipped as unknown (betterproto2 failed on the whole message); an enum
value is read as the int32 it is (betterproto2 kept all 64 bits).

betterproto2's own parse also fails, each time, on a message that holds a class whose pydantic
validator was never built outside its parser (forward references resolve in its frame, where its
argument `data`, the payload, shadows TikTokLiveProto's module `data`): such events decoded to
None before (a chat whose user has a fans club's prefer_data, for one); now they decode."""

from __future__ import annotations

import dataclasses
import math
import re
import struct
from collections.abc import Callable, Iterable
from typing import Any

import betterproto2
from betterproto2.casing import snake_case
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message as UpbMessage

FDP = descriptor_pb2.FieldDescriptorProto

_SCALARS: dict[str, int] = {
    betterproto2.TYPE_BOOL: FDP.TYPE_BOOL,
    betterproto2.TYPE_INT32: FDP.TYPE_INT32,
    betterproto2.TYPE_INT64: FDP.TYPE_INT64,
    betterproto2.TYPE_UINT32: FDP.TYPE_UINT32,
    betterproto2.TYPE_UINT64: FDP.TYPE_UINT64,
    betterproto2.TYPE_SINT32: FDP.TYPE_SINT32,
    betterproto2.TYPE_SINT64: FDP.TYPE_SINT64,
    betterproto2.TYPE_FIXED32: FDP.TYPE_FIXED32,
    betterproto2.TYPE_SFIXED32: FDP.TYPE_SFIXED32,
    betterproto2.TYPE_FIXED64: FDP.TYPE_FIXED64,
    betterproto2.TYPE_SFIXED64: FDP.TYPE_SFIXED64,
    betterproto2.TYPE_STRING: FDP.TYPE_STRING,
    betterproto2.TYPE_BYTES: FDP.TYPE_BYTES,
    # printed as their bits, turned into floats by _Fix (see the module's docstring)
    betterproto2.TYPE_FLOAT: FDP.TYPE_FIXED32,
    betterproto2.TYPE_DOUBLE: FDP.TYPE_FIXED64,
}
_INT64 = frozenset(betterproto2.INT_64_TYPES)
_FLOATS = frozenset((betterproto2.TYPE_FLOAT, betterproto2.TYPE_DOUBLE))
_NAMED = frozenset((betterproto2.TYPE_MESSAGE, betterproto2.TYPE_ENUM))

PACKAGE = "livegate.tiktok"


def _float_of(proto_type: str) -> Callable[[Any], float | str]:
    """The float the printed bits of a fixed32/fixed64 stand for, as betterproto2 prints it."""
    fmt, bits = ("<f", "<I") if proto_type == betterproto2.TYPE_FLOAT else ("<d", "<Q")

    def convert(printed: Any) -> float | str:
        value: float = struct.unpack(fmt, struct.pack(bits, int(printed)))[0]
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if math.isnan(value):
            return "NaN"
        return value

    return convert


def _default(proto_type: str) -> Any:
    """A map entry's key or value as betterproto2 prints it when the entry leaves it out."""
    if proto_type in _INT64:
        return "0"
    if proto_type in _FLOATS:
        return 0.0
    if proto_type == betterproto2.TYPE_STRING:
        return ""
    if proto_type == betterproto2.TYPE_BOOL:
        return False
    if proto_type == betterproto2.TYPE_BYTES:
        return ""
    return 0  # the 32-bit integers and enums (an entry's enum value would print its 0 name)


class MissingMapValue(ValueError):
    """A map entry without its message value: betterproto2 fails on it (None has no to_dict),
    so the whole event is dropped, as before."""


ToFloat = Callable[[Any], float | str]


@dataclasses.dataclass
class _Map:
    name: str
    key_default: Any  # what betterproto2 prints for an entry without a key
    value_default: Any  # ... without a value (MissingMapValue: it cannot print that entry)
    to_float: ToFloat | None  # for float and double values
    message: str | None  # the values' type, for message values


@dataclasses.dataclass
class _Fix:
    """What to turn back in one message type's printed dict: its float fields, its map fields,
    and the message fields whose types (at any depth) hold either."""

    floats: list[tuple[str, bool, ToFloat]] = dataclasses.field(default_factory=list)
    maps: list[_Map] = dataclasses.field(default_factory=list)
    messages: list[tuple[str, bool, str]] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.floats or self.maps or self.messages)


def classes_by_field(cls: type[betterproto2.Message]) -> dict[str, type]:
    """The message or enum class of each field (`name.value` for a map's values), read from
    the type hints as betterproto2's `_cls_for` reads them, resolving the hints once per class
    (its `cls_by_field` resolves them all again for each field)."""
    found: dict[str, type] = {}
    for name, hint in cls._type_hints().items():
        args = getattr(hint, "__args__", None)
        if args is None:
            found[name] = hint
        elif len(args) == 2 and args[1] is not type(None):  # dict[K, V]
            found[f"{name}.value"] = args[1]
        else:  # list[T], T | None
            found[name] = args[0]
    return found


class Schema:
    """The upb classes for a set of betterproto2 message classes and everything they refer
    to, in a pool of their own."""

    def __init__(self, roots: Iterable[type[betterproto2.Message]]) -> None:
        self._names: dict[type, str] = {}  # betterproto2 class -> full name in the pool
        self._fixes: dict[str, _Fix] = {}
        self._message_fields: dict[str, list[tuple[str, bool, str]]] = {}
        file = descriptor_pb2.FileDescriptorProto(
            name="livegate/tiktok_events.proto", package=PACKAGE, syntax="proto3"
        )
        pending = list(roots)
        self._roots = {cls: self._name(cls) for cls in pending}
        done: set[type] = set()
        while pending:
            cls = pending.pop()
            if cls in done:
                continue
            done.add(cls)
            if issubclass(cls, betterproto2.Enum):
                file.message_type.append(self._enum_holder(cls))
            else:
                file.message_type.append(self._message(cls, pending))
        self.pool = descriptor_pool.DescriptorPool()
        self.pool.Add(file)
        self._resolve_fixes()
        self.classes: dict[type[betterproto2.Message], type[UpbMessage]] = {
            cls: message_factory.GetMessageClass(self.pool.FindMessageTypeByName(name))
            for cls, name in self._roots.items()
        }

    def _name(self, cls: type) -> str:
        """A unique name (TikTokLiveProto has classes of the same name in several modules)."""
        name = self._names.get(cls)
        if name is None:
            short = re.sub(r"\W", "_", cls.__qualname__)
            name = self._names[cls] = f"{PACKAGE}.N{len(self._names)}_{short}"
        return name

    def _enum_holder(self, cls: type[betterproto2.Enum]) -> descriptor_pb2.DescriptorProto:
        """An enum, nested in a message of its own: enum values are scoped like siblings of
        their enum, and TikTok's enums share value names."""
        holder = descriptor_pb2.DescriptorProto(name=self._name(cls).rsplit(".", 1)[1])
        enum = holder.enum_type.add(name="E")
        # proto3 wants 0 first; betterproto2 prints a known value by its proto name
        for member in sorted(cls, key=lambda m: (m.value != 0, m.value)):
            name = member.proto_name or member.name
            enum.value.add(name=name, number=member.value)
        return holder

    def _message(
        self, cls: type[betterproto2.Message], pending: list[type]
    ) -> descriptor_pb2.DescriptorProto:
        full = self._name(cls)
        proto = descriptor_pb2.DescriptorProto(name=full.rsplit(".", 1)[1])
        fix = self._fixes[full] = _Fix()
        nested = self._message_fields[full] = []
        by_field = classes_by_field(cls)
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            meta = betterproto2.FieldMetadata.get(field)
            name = snake_case(field.name).rstrip("_")  # to_dict's key
            out = proto.field.add(name=name, number=meta.number, json_name=name)
            out.label = FDP.LABEL_REPEATED if meta.repeated else FDP.LABEL_OPTIONAL
            if meta.unwrap is not None or meta.group is not None:
                raise NotImplementedError(f"{cls.__name__}.{field.name}: wrapper or oneof")
            if meta.map_meta is not None:
                key, value = (m.proto_type for m in meta.map_meta)
                value_cls = by_field[f"{field.name}.value"] if value in _NAMED else None
                out.label = FDP.LABEL_REPEATED
                out.type = FDP.TYPE_MESSAGE
                out.type_name = f".{full}.{self._entry(proto, name, key, value, value_cls)}"
                if value_cls is not None:
                    pending.append(value_cls)
                fix.maps.append(self._map(name, key, value, value_cls))
                continue
            if meta.proto_type in _NAMED:
                target = by_field[field.name]
                pending.append(target)
                if meta.proto_type == betterproto2.TYPE_MESSAGE:
                    out.type = FDP.TYPE_MESSAGE
                    out.type_name = f".{self._name(target)}"
                    nested.append((name, bool(meta.repeated), self._name(target)))
                else:
                    out.type = FDP.TYPE_ENUM
                    out.type_name = f".{self._name(target)}.E"
            else:
                out.type = _SCALARS[meta.proto_type]
                if meta.proto_type in _FLOATS:
                    fix.floats.append((name, bool(meta.repeated), _float_of(meta.proto_type)))
            if meta.optional and meta.proto_type != betterproto2.TYPE_MESSAGE:
                # proto3 `optional`: printed when set, even to its zero, like betterproto2
                out.proto3_optional = True
                out.oneof_index = len(proto.oneof_decl)
                proto.oneof_decl.add(name=f"_{name}")
        return proto

    def _entry(
        self,
        proto: descriptor_pb2.DescriptorProto,
        name: str,
        key_type: str,
        value_type: str,
        value_cls: type | None,
    ) -> str:
        """A map's entry as a plain nested message (not `map_entry`: see the docstring)."""
        entry = proto.nested_type.add(name=f"Entry_{name}")
        entry.field.add(name="key", number=1, type=_SCALARS[key_type], json_name="key")
        value = entry.field.add(name="value", number=2, json_name="value")
        if value_type == betterproto2.TYPE_MESSAGE and value_cls is not None:
            value.type = FDP.TYPE_MESSAGE
            value.type_name = f".{self._name(value_cls)}"
        elif value_type == betterproto2.TYPE_ENUM and value_cls is not None:
            value.type = FDP.TYPE_ENUM
            value.type_name = f".{self._name(value_cls)}.E"
        else:
            value.type = _SCALARS[value_type]
        return entry.name

    def _map(self, name: str, key_type: str, value_type: str, value_cls: type | None) -> _Map:
        if value_type == betterproto2.TYPE_MESSAGE and value_cls is not None:
            return _Map(name, _default(key_type), MissingMapValue, None, self._name(value_cls))
        if value_type == betterproto2.TYPE_ENUM and value_cls is not None:
            zero = value_cls(0)  # betterproto2's entry defaults its value to the enum's 0
            missing = (zero.proto_name or zero.name) or 0
            return _Map(name, _default(key_type), missing, None, None)
        to_float = _float_of(value_type) if value_type in _FLOATS else None
        return _Map(name, _default(key_type), _default(value_type), to_float, None)

    def _resolve_fixes(self) -> None:
        """Keep, for each type, the message fields whose types need fixing at any depth."""
        needs = {name for name, fix in self._fixes.items() if fix}
        changed = True
        while changed:
            changed = False
            for name, fields in self._message_fields.items():
                if name not in needs and any(t in needs for _, _, t in fields):
                    needs.add(name)
                    changed = True
        for name, fields in self._message_fields.items():
            self._fixes[name].messages = [f for f in fields if f[2] in needs]

    def _apply(self, printed: dict[str, Any], fix: _Fix) -> None:
        for name, repeated, to_float in fix.floats:
            if name in printed:
                if repeated:
                    printed[name] = [to_float(v) for v in printed[name]]
                elif (number := to_float(printed[name])) == 0:  # -0.0: a default to betterproto2
                    del printed[name]
                else:
                    printed[name] = number
        for spec in fix.maps:
            if spec.name in printed:
                printed[spec.name] = self._entries(printed[spec.name], spec)
        for name, repeated, type_name in fix.messages:
            if name in printed:
                inner = self._fixes[type_name]
                for item in printed[name] if repeated else (printed[name],):
                    self._apply(item, inner)

    def _entries(self, entries: list[dict[str, Any]], spec: _Map) -> dict[Any, Any]:
        """A map's printed entries as betterproto2 prints the map: in the entries' order (the
        first place of a key, the last value), with the key's type."""
        out: dict[Any, Any] = {}
        inner = self._fixes[spec.message] if spec.message is not None else None
        for entry in entries:
            if "value" not in entry:
                if spec.value_default is MissingMapValue:
                    raise MissingMapValue(spec.name)
                value = spec.value_default
            elif spec.to_float is not None:
                value = spec.to_float(entry["value"])
            else:
                value = entry["value"]
                if inner:
                    self._apply(value, inner)
            out[entry.get("key", spec.key_default)] = value
        return out

    def to_dict(self, cls: type[betterproto2.Message], payload: bytes) -> dict[str, Any]:
        """What `cls().parse(payload).to_dict(casing=SNAKE)` gives; raises on a payload
        upb cannot parse."""
        message = self.classes[cls].FromString(payload)
        printed: dict[str, Any] = json_format.MessageToDict(
            message, preserving_proto_field_name=True
        )
        fix = self._fixes[self._roots[cls]]
        if fix:
            self._apply(printed, fix)
        return printed
