"""Request-parameter validation derived from the stripe SDK's typed params (``stripe.params``).

Each endpoint is declared with the SDK TypedDict that types its parameters (for example
``CustomerCreateParams``). The TypedDict is compiled once into a small tree of nodes that
coerces form-decoded strings into ints/bools/lists and rejects what the SDK would not type-check:
unknown parameters, missing required ones, values outside a ``Literal`` enum, malformed integers.
The request-option keys every SDK params class inherits (``api_key``, ``idempotency_key`` ...) are
not request parameters and are excluded.
"""

from __future__ import annotations

import decimal
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ForwardRef, Literal, NotRequired, Required, Union

import typing_extensions
from stripe._request_options import RequestOptions
from stripe._stripe_object import UntypedStripeObject

from .errors import StripeError, invalid, missing_param, unknown_param

_REQUEST_OPTION_KEYS = frozenset(RequestOptions.__annotations__)
_INT = re.compile(r"^-?\d+$")
_FLOAT = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")

# Marker for "the caller posted an empty string to unset this parameter".
EMPTY = ""


class Node:
    def coerce(self, value: Any, param: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def accepts_shape(self, value: Any) -> bool:
        """Cheap pre-check used by unions to pick the alternative matching the value's shape."""
        return not isinstance(value, dict)


def _empty_error(param: str) -> StripeError:
    return invalid(
        f"You passed an empty string for '{param}'. We assume empty values are an attempt to "
        f"unset a parameter; however '{param}' cannot be unset. You should remove '{param}' "
        "from your request or supply a non-empty value.",
        param=param,
        code="parameter_invalid_empty",
    )


def _expect_scalar(value: Any, param: str) -> str:
    if isinstance(value, dict):
        raise invalid(f"Invalid value for {param}: expected a scalar, got a hash", param=param)
    return str(value)


@dataclass
class ScalarNode(Node):
    kind: str  # "str" | "int" | "float" | "bool" | "decimal" | "any"

    def coerce(self, value: Any, param: str) -> Any:
        if self.kind == "any":
            return value
        text = _expect_scalar(value, param)
        if text == "" and self.kind != "str":
            raise _empty_error(param)
        if self.kind == "str":
            return text
        if self.kind == "int":
            if not _INT.match(text):
                raise invalid(f"Invalid integer: {text}", param=param, code="parameter_invalid_integer")
            return int(text)
        if self.kind == "float":
            if not _FLOAT.match(text):
                raise invalid(f"Invalid float: {text}", param=param)
            return float(text)
        if self.kind == "decimal":
            try:
                return decimal.Decimal(text)
            except decimal.InvalidOperation:
                raise invalid(f"Invalid decimal: {text}", param=param) from None
        if self.kind == "bool":
            if text not in ("true", "false"):
                raise invalid(f"Invalid boolean: {text}", param=param)
            return text == "true"
        raise AssertionError(self.kind)


@dataclass
class EnumNode(Node):
    values: tuple[str, ...]

    def coerce(self, value: Any, param: str) -> Any:
        text = _expect_scalar(value, param)
        if text == "":
            raise _empty_error(param)
        if text not in self.values:
            if len(self.values) == 1:
                choices = self.values[0]
            else:
                choices = ", ".join(self.values[:-1]) + f", or {self.values[-1]}"
            raise invalid(f"Invalid {param}: must be one of {choices}", param=param)
        return text


@dataclass
class ListNode(Node):
    item: Node

    def accepts_shape(self, value: Any) -> bool:
        return isinstance(value, (dict, list))

    def coerce(self, value: Any, param: str) -> Any:
        if value == "":
            raise _empty_error(param)
        if isinstance(value, list):
            entries = list(enumerate(value))
        elif isinstance(value, dict):
            if not all(_INT.match(k) for k in value):
                raise invalid(f"Invalid array for {param}", param=param)
            entries = sorted(((int(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        else:
            raise invalid(f"Invalid array for {param}", param=param)
        return [self.item.coerce(v, f"{param}[{i}]") for i, (_, v) in enumerate(entries)]


@dataclass
class MapNode(Node):
    value: Node

    def accepts_shape(self, value: Any) -> bool:
        return isinstance(value, dict)

    def coerce(self, value: Any, param: str) -> Any:
        if value == "":
            return EMPTY
        if not isinstance(value, dict):
            raise invalid(f"Invalid hash for {param}", param=param)
        return {k: self.value.coerce(v, f"{param}[{k}]") for k, v in value.items()}


@dataclass
class ObjectNode(Node):
    typed_dict: Any
    fields: dict[str, Node] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    built: bool = False

    def accepts_shape(self, value: Any) -> bool:
        return isinstance(value, dict)

    def build(self) -> None:
        if self.built:
            return
        self.built = True
        namespace = vars(sys.modules[self.typed_dict.__module__])
        required: set[str] = set()
        for name, annotation in self.typed_dict.__annotations__.items():
            if name in _REQUEST_OPTION_KEYS:
                continue
            is_required = name in getattr(self.typed_dict, "__required_keys__", frozenset())
            origin = typing.get_origin(annotation)
            if origin is NotRequired:
                is_required = False
                annotation = typing.get_args(annotation)[0]
            elif origin is Required:
                is_required = True
                annotation = typing.get_args(annotation)[0]
            self.fields[name] = build_node(annotation, namespace)
            if is_required:
                required.add(name)
        self.required = frozenset(required)

    def coerce(self, value: Any, param: str) -> Any:
        self.build()
        if value == "":
            raise _empty_error(param)
        if not isinstance(value, dict):
            raise invalid(f"Invalid object for {param}", param=param)
        out: dict[str, Any] = {}
        for key, raw in value.items():
            child_param = f"{param}[{key}]" if param else key
            node = self.fields.get(key)
            if node is None:
                raise unknown_param(child_param)
            out[key] = node.coerce(raw, child_param)
        for key in sorted(self.required):
            if key not in out:
                raise missing_param(f"{param}[{key}]" if param else key)
        return out


@dataclass
class UnionNode(Node):
    options: list[Node]
    allow_empty: bool

    def accepts_shape(self, value: Any) -> bool:
        return any(o.accepts_shape(value) for o in self.options)

    def coerce(self, value: Any, param: str) -> Any:
        if value == "" and self.allow_empty:
            return EMPTY
        candidates = [o for o in self.options if o.accepts_shape(value)] or self.options

        # Prefer an integer reading of digit strings, then enums, then the rest.
        def rank(node: Node) -> int:
            if isinstance(node, ScalarNode) and node.kind in ("int", "float", "decimal"):
                return 0 if isinstance(value, str) and _FLOAT.match(value) else 2
            if isinstance(node, EnumNode):
                return 1
            return 3

        first_error: StripeError | None = None
        for node in sorted(candidates, key=rank):
            try:
                return node.coerce(value, param)
            except StripeError as exc:
                if first_error is None:
                    first_error = exc
        assert first_error is not None
        raise first_error


_OBJECT_CACHE: dict[Any, ObjectNode] = {}


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    if isinstance(annotation, ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        try:
            return eval(annotation, dict(namespace))
        except Exception:
            return Any
    return annotation


def build_node(annotation: Any, namespace: dict[str, Any]) -> Node:
    annotation = _resolve(annotation, namespace)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (NotRequired, Required):
        return build_node(args[0], namespace)
    if origin is Union or origin is types.UnionType:
        return _build_union([_resolve(a, namespace) for a in args], namespace)
    if origin is Literal:
        return _build_union([annotation], namespace)
    if typing_extensions.is_typeddict(annotation):
        node = _OBJECT_CACHE.get(annotation)
        if node is None:
            node = ObjectNode(annotation)
            _OBJECT_CACHE[annotation] = node
        return node
    if origin in (list, tuple) or annotation in (list, list):
        return ListNode(build_node(args[0], namespace) if args else ScalarNode("any"))
    if origin in (dict, typing.Mapping) or annotation in (dict, dict):
        value = build_node(args[1], namespace) if len(args) == 2 else ScalarNode("any")
        return MapNode(value)
    if origin is UntypedStripeObject or annotation is UntypedStripeObject:
        return MapNode(build_node(args[0], namespace) if args else ScalarNode("any"))
    if annotation is bool:
        return ScalarNode("bool")
    if annotation is int:
        return ScalarNode("int")
    if annotation is float:
        return ScalarNode("float")
    if annotation is decimal.Decimal:
        return ScalarNode("decimal")
    if annotation is str:
        return ScalarNode("str")
    return ScalarNode("any")


def _build_union(members: list[Any], namespace: dict[str, Any]) -> Node:
    allow_empty = False
    enum_values: list[str] = []
    has_str = False
    others: list[Node] = []
    for member in members:
        if typing.get_origin(member) is Literal:
            for literal in typing.get_args(member):
                if literal == "":
                    allow_empty = True
                elif isinstance(literal, bool):
                    others.append(ScalarNode("bool"))
                else:
                    enum_values.append(str(literal))
        elif member is str:
            has_str = True
        elif member is type(None):
            continue
        else:
            others.append(build_node(member, namespace))
    options: list[Node] = []
    if enum_values:
        # `Literal[...] | str` is the SDK's forward-compatible enum: validate against the literals.
        options.append(EnumNode(tuple(enum_values)))
    elif has_str:
        options.append(ScalarNode("str"))
    options.extend(others)
    if len(options) == 1 and not allow_empty:
        return options[0]
    if not options:
        options.append(EnumNode(("",)))
    return UnionNode(options, allow_empty)


def params_node(typed_dict: Any) -> ObjectNode:
    node = build_node(typed_dict, {})
    assert isinstance(node, ObjectNode)
    return node


def validate_params(typed_dict: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """Coerce and check form-decoded ``raw`` parameters against an SDK params TypedDict."""
    node = params_node(typed_dict)
    result = node.coerce(raw, "")
    assert isinstance(result, dict)
    return result
