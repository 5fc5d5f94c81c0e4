"""List requests as KFP clients send them: `filter` JSON, `sort_by`, `page_size` and opaque page tokens.

`filter` is a URL-encoded `Filter` message. KFP's server parses it with protojson, so it accepts
operations by name or number and value fields in snake_case or camelCase; `kfp.Client` itself sends
`{"predicates": [{"operation": 1, "key": "display_name", "stringValue": "Default"}]}`. `sort_by` is
`"field"` or `"field desc"`. A page token is opaque to clients: the query it continues (filter,
sort, and the last row's sort value and id) in base64, signed with an HMAC, so a client only has to
echo it back, later pages ignore `filter`/`sort_by` as KFP does, and a token the server did not
issue is refused as a whole instead of being trusted part by part. The key is made anew by each
server process: a token outlives neither a restart nor, in practice, the listing it belongs to.
The namespace "default" is the store's "" (`store_namespace`), as in the resource API.

Each resource gives its `Fields`: the API keys it can filter and sort on, mapped to columns. Every
list endpoint takes the same `ListParams` and answers with `respond`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, Query
from fastapi.responses import JSONResponse

from flowdeck.controlplane.auth import Access
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp import wire
from flowdeck.resources.model import store_namespace
from flowdeck.store.catalog import OPERATIONS, ListQuery, Page, Predicate

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
#: Signs page tokens; made anew by every server process.
_TOKEN_KEY = secrets.token_bytes(32)
_TOKEN_MAC_BYTES = 16


@dataclass(frozen=True)
class ListParams:
    """The query parameters every KFP list takes; a handler receives them as a `ListParamsDep`."""

    page_token: Annotated[str | None, Query(description="next_page_token of the previous page.")] = None
    page_size: Annotated[int | None, Query(description=f"Default {DEFAULT_PAGE_SIZE}, "
                                                       f"at most {MAX_PAGE_SIZE}.")] = None
    sort_by: Annotated[str | None, Query(description='"field" or "field desc", e.g. "created_at desc".')] = None
    filter: Annotated[str | None, Query(description='A Filter as JSON, e.g. {"predicates": [{"operation": '
                                                    '"EQUALS", "key": "display_name", "string_value": "x"}]}.')] = None


ListParamsDep = Annotated[ListParams, Depends()]

#: Predicate.Operation numbers (filter.proto).
OPERATION_NUMBERS = {1: "EQUALS", 2: "NOT_EQUALS", 3: "GREATER_THAN", 5: "GREATER_THAN_EQUALS", 6: "LESS_THAN",
                     7: "LESS_THAN_EQUALS", 8: "IN", 9: "IS_SUBSTRING"}
_SCALARS = ("int_value", "long_value", "string_value", "timestamp_value")
_LISTS = ("int_values", "long_values", "string_values")
_VALUE_FIELDS = {name: name for name in _SCALARS + _LISTS} | {
    "intValue": "int_value", "longValue": "long_value", "stringValue": "string_value",
    "timestampValue": "timestamp_value", "intValues": "int_values", "longValues": "long_values",
    "stringValues": "string_values",
}


@dataclass(frozen=True)
class Fields:
    """The filter and sort keys of one resource, as API key -> column."""

    resource: str
    columns: Mapping[str, str]
    default_sort: str = "created_at"

    def column(self, key: str, purpose: str) -> str:
        if key not in self.columns:
            known = ", ".join(sorted(self.columns))
            raise ApiError(400, f"cannot {purpose} {self.resource} by {key!r}; use one of: {known}")
        return self.columns[key]


def _fail(message: str) -> ApiError:
    return ApiError(400, f"invalid filter: {message}")


def parse_filter(text: str | None, fields: Fields) -> tuple[Predicate, ...]:
    """The predicates of a `filter` query parameter (empty when there is none)."""
    if not text or not text.strip():
        return ()
    raw = text.strip()
    if not raw.startswith("{"):
        raw = unquote(raw)  # some clients encode it twice
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise _fail(f"not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise _fail('expected an object like {"predicates": [...]}')
    unknown = set(document) - {"predicates"}
    if unknown:
        raise _fail(f"unknown field {sorted(unknown)[0]!r}")
    predicates = document.get("predicates") or []
    if not isinstance(predicates, list):
        raise _fail("predicates must be a list")
    return tuple(_predicate(item, fields) for item in predicates)


def _operation(value: Any) -> str:
    if isinstance(value, bool):
        raise _fail(f"unknown operation {value!r}")
    if isinstance(value, int):
        if value not in OPERATION_NUMBERS:
            raise _fail(f"unknown operation {value}")
        return OPERATION_NUMBERS[value]
    if isinstance(value, str) and value.upper() in OPERATIONS:
        return value.upper()
    if isinstance(value, str) and value.isdigit():
        return _operation(int(value))
    raise _fail(f"unknown operation {value!r}; use one of {', '.join(OPERATIONS)}")


def _predicate(item: Any, fields: Fields) -> Predicate:
    if not isinstance(item, dict):
        raise _fail("each predicate must be an object")
    values: dict[str, Any] = {}
    for name, value in item.items():
        if name in ("operation", "op", "key"):
            continue
        if name not in _VALUE_FIELDS:
            raise _fail(f"unknown predicate field {name!r}")
        values[_VALUE_FIELDS[name]] = value
    if "key" not in item or not isinstance(item["key"], str) or not item["key"]:
        raise _fail("every predicate needs a key")
    if "operation" not in item:
        raise _fail(f"predicate on {item['key']!r} has no operation")
    operation = _operation(item["operation"])
    key = item["key"]
    column = fields.column(key, "filter")
    if len(values) != 1:
        raise _fail(f"predicate on {key!r} needs exactly one value field (e.g. string_value)")
    (kind, value), = values.items()
    if operation == "IN":
        if kind not in _LISTS or not isinstance(value, dict) or not isinstance(value.get("values"), list):
            raise _fail(f"IN on {key!r} takes a list: string_values/int_values/long_values {{\"values\": [...]}}")
        value = value["values"]
    elif kind in _LISTS:
        raise _fail(f"{operation} on {key!r} takes a single value, not {kind}")
    if any(isinstance(v, str) and "\x00" in v for v in (value if isinstance(value, list) else [value])):
        raise _fail(f"the value of {key!r} must not contain a NUL byte")
    if key == "storage_state":
        value = [_storage_state(v) for v in value] if isinstance(value, list) else _storage_state(value)
    elif key == "namespace":
        value = [store_namespace(v) for v in value] if isinstance(value, list) else store_namespace(value)
    return Predicate(column=column, operation=operation, value=value)


def _storage_state(value: Any) -> Any:
    """v1 spellings of storage states (STORAGESTATE_ARCHIVED) as the v2 names."""
    if isinstance(value, str):
        for prefix in ("STORAGESTATE_", "STORAGE_STATE_"):
            if value.startswith(prefix) and value != "STORAGE_STATE_UNSPECIFIED":
                return value[len(prefix):]
    return value


def parse_sort(sort_by: str | None, fields: Fields) -> tuple[str, bool]:
    """(column, descending) of a `sort_by` such as "created_at desc"."""
    parts = (sort_by or "").split()
    if not parts:
        return fields.column(fields.default_sort, "sort"), False
    if len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise ApiError(400, f'invalid sort_by {sort_by!r}: expected "field" or "field desc"')
    if parts[0].startswith("metric:"):
        raise ApiError(400, "sorting runs by metrics is not supported")
    return fields.column(parts[0], "sort"), len(parts) == 2 and parts[1].lower() == "desc"


def page_size(value: int | None) -> int:
    if value is None or value == 0:
        return DEFAULT_PAGE_SIZE
    if value < 0:
        raise ApiError(400, f"page_size must be positive, got {value}")
    return min(value, MAX_PAGE_SIZE)


def namespaces(access: Access, namespace: str | None) -> list[str] | None:
    """The namespaces a list may show: the one asked for (if readable), else all the caller may read.

    No namespace, or "" (what `kfp.Client` sends in single-user mode), lists every namespace the
    caller may read; "default" is the single-user namespace, the store's "".
    """
    if namespace:
        namespace = store_namespace(namespace)
        access.require("read", namespace)
        return [namespace]
    visible = access.visible("read")
    return None if visible is None else sorted(visible)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _mac(payload: str) -> str:
    return _b64(hmac.new(_TOKEN_KEY, payload.encode(), hashlib.sha256).digest()[:_TOKEN_MAC_BYTES])


def encode_token(fields: Fields, query: ListQuery, after: tuple[Any, str]) -> str:
    """A signed token for the page after `after`: `<base64 of the query>.<base64 of its HMAC>`."""
    state = {
        "r": fields.resource,
        "p": [[p.column, p.operation, p.value] for p in query.predicates],
        "s": query.sort,
        "d": query.desc,
        "a": [_jsonable(after[0]), after[1]],
    }
    payload = _b64(json.dumps(state, separators=(",", ":")).encode())
    return f"{payload}.{_mac(payload)}"


def _decode_token(token: str, fields: Fields) -> dict[str, Any]:
    """The query a token continues; one 400 for any token this process did not issue for this resource."""
    payload, _, mac = token.partition(".")
    state: Any = None
    if hmac.compare_digest(mac.encode(), _mac(payload).encode()):  # then this process wrote the payload
        state = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if not isinstance(state, dict) or state.get("r") != fields.resource:
        raise ApiError(400, f"invalid page token {token[:40]!r}: pass the next_page_token of a previous "
                            f"list of {fields.resource}")
    return state


def build_query(fields: Fields, params: ListParams, *, access: Access, namespace: str | None = None,
                extra: tuple[Predicate, ...] = (), scoped: bool = True) -> ListQuery:
    """The store query of a list request; `extra` adds predicates of the request's own parameters.

    The rows are limited to the namespaces the caller may read (in the query, so before paging);
    `scoped=False` is for lists inside one object whose namespace the handler has checked already.
    """
    visible = namespaces(access, namespace) if scoped else None
    size = page_size(params.page_size)
    if params.page_token:
        state = _decode_token(params.page_token, fields)
        predicates = tuple(Predicate(*p) for p in state["p"])
        return ListQuery(predicates=predicates + extra, sort=state["s"], desc=bool(state["d"]),
                         page_size=size, after=(state["a"][0], state["a"][1]), namespaces=visible)
    sort, desc = parse_sort(params.sort_by, fields)
    return ListQuery(predicates=parse_filter(params.filter, fields) + extra, sort=sort, desc=desc,
                     page_size=size, namespaces=visible)


def next_token(fields: Fields, query: ListQuery, result: Page, extra: tuple[Predicate, ...] = ()) -> str | None:
    """The token of the page after `result`; `extra` predicates are left out (the next request repeats them)."""
    if result.after is None:
        return None
    own = tuple(p for p in query.predicates if p not in extra)
    return encode_token(fields, ListQuery(predicates=own, sort=query.sort, desc=query.desc), result.after)


def respond(kind: str, items: Iterable[dict[str, Any]], fields: Fields, query: ListQuery, result: Page,
            extra: tuple[Predicate, ...] = ()) -> JSONResponse:
    """A list answer: the page's `items` under `kind`, the total size, and the next page's token."""
    return wire.respond(wire.page(kind, items, result.total_size, next_token(fields, query, result, extra)))
