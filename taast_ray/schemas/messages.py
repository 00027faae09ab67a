"""The one line a schema's first error becomes: ``{source}: {record} {field}: {message}``.

``record`` names the record as a user finds it in the file: by its own id where it has a usable one
(``annotation 17``, ``task 5``, ``image 'cam/a.jpg'``), else by its place (``annotations[3]``,
``tasks[0]``), and by its place too when the id itself is the defect. ``field`` is the path inside
the record (``bbox[2]``, ``annotations[0].result[1].value.x``). Values are shown as their repr, cut
to 40 characters, so a message never holds a newline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import TypeAdapter
from pydantic_core import PydanticCustomError

INT64 = (-2**63, 2**63 - 1)
OWN = "taast_"  # the error types of our own validators: their message is told as it is


@dataclass(frozen=True)
class Contract:
    """A document's schema and how a message names its records."""
    adapter: TypeAdapter
    root: str                 # what the whole document must be, told when it is something else
    records: tuple = ()       # a document that is a list: (noun, plural, id key) of its items
    collections: dict = field(default_factory=dict)  # an object: its list keys → (noun, id key)
    tags: frozenset = frozenset()  # tagged unions' tags, which pydantic puts in the path


def custom(kind: str, template: str, loc: tuple = (), **context) -> PydanticCustomError:
    """One of our own errors; ``loc`` places one a document-level validator finds (pydantic
    would place it at the document's root)."""
    return PydanticCustomError(OWN + kind, template, {**context, "loc": loc})


def show(value, limit: int = 40) -> str:
    """A value as a message shows it: its repr, at most ``limit`` characters, on one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe(contract: Contract, raw, source: str, error: dict) -> str:
    """The line for ``error`` (one of pydantic's ``errors()``) of the document ``raw``."""
    loc = tuple((error.get("ctx") or {}).get("loc") or (p for p in error["loc"] if p not in contract.tags))
    if not loc and not error["type"].startswith(OWN):
        return f"{source}: {contract.root}, got {show(raw)}"
    record, rest = _record(contract, raw, loc)
    if error["type"] == "missing" and rest and isinstance(rest[-1], int):  # a fixed-length list one short
        where, message = _where(record, rest[:-1]), f"too short (no item [{rest[-1]}]), got {show(error['input'])}"
    else:
        where, message = _where(record, rest), _message(error)
    return f"{source}: {where}: {message}" if where else f"{source}: {message}"


def _record(contract: Contract, raw, loc: tuple) -> tuple[str, tuple]:
    """(the record the error is in, the error's path inside it)."""
    if contract.records and loc and isinstance(loc[0], int):
        (noun, plural, id_key), items, index, rest = contract.records, raw, loc[0], loc[1:]
    elif len(loc) >= 2 and loc[0] in contract.collections and isinstance(loc[1], int):
        (noun, id_key), plural, index, rest = contract.collections[loc[0]], loc[0], loc[1], loc[2:]
        items = raw.get(plural) if isinstance(raw, dict) else None
    else:
        return "", loc
    try:
        own = items[index].get(id_key)
    except (AttributeError, IndexError, KeyError, TypeError):
        own = None
    usable = (isinstance(own, int) and not isinstance(own, bool) and INT64[0] <= own <= INT64[1]
              or isinstance(own, str) and own != "")
    if usable and rest[:1] != (id_key,):
        return f"{noun} {show(own)}", rest
    return f"{plural}[{index}]", rest


def _where(record: str, parts: tuple) -> str:
    path = ""
    for p in parts:
        if isinstance(p, int):
            path += f"[{p}]"
        elif p.isidentifier():
            path += f".{p}" if path else p
        else:  # a key of the file's own (a JSON_MIN control name), quoted
            path += f"[{p!r}]"
    return " ".join(filter(None, (record, path)))


KINDS = {"int_type": "must be an integer", "float_type": "must be a number",
         "finite_number": "must be a finite number", "string_type": "must be a string",
         "bool_type": "must be true or false", "list_type": "must be a list", "tuple_type": "must be a list",
         "dict_type": "must be an object", "model_type": "must be an object",
         "model_attributes_type": "must be an object"}
BOUNDS = (("gt", ">"), ("lt", "<"), ("ge", ">="), ("le", "<="))


def _message(error: dict) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind.startswith(OWN) or kind == "missing":
        return error["msg"] if kind != "missing" else "required"
    if ctx.get("ge") == INT64[0] or ctx.get("le") == INT64[1]:
        text = "out of range (a 64-bit integer)"
    elif any(k in ctx for k, _ in BOUNDS) and kind in ("greater_than", "less_than", "greater_than_equal",
                                                       "less_than_equal"):
        op, bound = next((op, ctx[k]) for k, op in BOUNDS if k in ctx)
        text = f"must be {op} {int(bound) if float(bound).is_integer() else bound}"
    elif kind == "too_short" and ctx.get("min_length") == 1:
        text = "must not be empty"
    elif kind in ("too_short", "too_long"):
        text = (f"must have at least {ctx['min_length']} items" if kind == "too_short"
                else f"must have at most {ctx['max_length']} items")
    elif kind == "literal_error":
        text = f"must be {ctx['expected']}"
    else:
        text = KINDS.get(kind) or error["msg"][:1].lower() + error["msg"][1:]
    return f"{text}, got {show(error['input'])}"
