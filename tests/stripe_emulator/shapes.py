"""Fill the fields the SDK's resource classes declare but a handler did not set.

Handlers build the fields that carry meaning; this module adds every other attribute that the SDK
class for the object's ``object`` value declares (``None`` for optional ones, an empty/zero value
otherwise), recursing into nested objects. That way code written against the typed SDK objects
never hits a missing attribute when it runs against the emulator.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

from stripe._list_object import ListObject
from stripe._object_classes import OBJECT_CLASSES
from stripe._stripe_object import StripeObject, UntypedStripeObject

Default = Callable[[], Any]
_FIELD_CACHE: dict[type, list[tuple[str, Default, type | None]]] = {}
_SKIP = frozenset({"deleted", "OBJECT_NAME", "_inner_class_types", "_inner_class_dicts", "_field_encodings"})


def _sdk_class(object_name: str) -> type | None:
    entry = OBJECT_CLASSES.get(object_name)
    if entry is None:
        return None
    module = importlib.import_module(entry[0])
    cls = getattr(module, entry[1], None)
    return cls if inspect.isclass(cls) else None


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(annotation)
        if type(None) in args:
            rest = [a for a in args if a is not type(None)]
            return (rest[0] if len(rest) == 1 else Union.__getitem__(tuple(rest))), True
    return annotation, False


def _default_for(annotation: Any, owner: type) -> tuple[Default, type | None]:
    """A default factory for a required field, and the nested StripeObject class if any."""
    origin = typing.get_origin(annotation)
    if origin is list:
        return list, None
    if origin is Literal:
        first = typing.get_args(annotation)[0]
        return (lambda: first), None
    if origin is ListObject or annotation is ListObject:
        return (lambda: {"object": "list", "data": [], "has_more": False, "url": ""}), None
    if origin is UntypedStripeObject or annotation is UntypedStripeObject:
        return dict, None
    if annotation is bool:
        return (lambda: False), None
    if annotation in (int, float):
        return (lambda: 0), None
    if annotation is str:
        return (lambda: ""), None
    if origin is Union or origin is types.UnionType:
        # Enum-or-str, or an expandable id: an empty string is the least surprising filler.
        return (lambda: ""), None
    if inspect.isclass(annotation) and issubclass(annotation, StripeObject):
        nested = annotation if annotation.__qualname__.startswith(owner.__qualname__) else None
        return dict, nested
    return (lambda: None), None


def _fields(cls: type) -> list[tuple[str, Default, type | None]]:
    cached = _FIELD_CACHE.get(cls)
    if cached is not None:
        return cached
    result: list[tuple[str, Default, type | None]] = []
    for name, annotation in inspect.get_annotations(cls).items():
        if name in _SKIP or isinstance(annotation, str):
            continue
        inner, optional = _unwrap_optional(annotation)
        default, nested = _default_for(inner, cls)
        if optional:
            default = _none
        if nested is None and _nested_of(inner, cls):
            nested = inner
        if nested is None and typing.get_origin(inner) is list:
            args = typing.get_args(inner)
            if args and _nested_of(args[0], cls):
                nested = args[0]
        result.append((name, default, nested))
    _FIELD_CACHE[cls] = result
    return result


def _nested_of(candidate: Any, owner: type) -> bool:
    """Whether ``candidate`` is a StripeObject class declared inside ``owner``."""
    return (
        inspect.isclass(candidate)
        and issubclass(candidate, StripeObject)
        and candidate.__qualname__.startswith(owner.__qualname__)
    )


def _none() -> None:
    return None


def _complete_with(cls: type, obj: dict[str, Any]) -> None:
    for name, default, nested in _fields(cls):
        if name not in obj:
            obj[name] = default()
        value = obj[name]
        if nested is None:
            continue
        if isinstance(value, dict):
            _complete_with(nested, value)
        elif isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict):
                    _complete_with(nested, entry)


def complete(obj: dict[str, Any]) -> dict[str, Any]:
    """Fill undeclared fields of a rendered object (and of embedded objects) in place."""
    object_name = obj.get("object")
    if object_name == "list":
        for entry in obj.get("data", []):
            if isinstance(entry, dict):
                complete(entry)
        return obj
    if obj.get("deleted") is True or not isinstance(object_name, str):
        return obj
    cls = _sdk_class(object_name)
    if cls is not None:
        _complete_with(cls, obj)
    for value in obj.values():
        if isinstance(value, dict) and isinstance(value.get("object"), str):
            complete(value)
        elif isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict) and isinstance(entry.get("object"), str):
                    complete(entry)
    return obj
