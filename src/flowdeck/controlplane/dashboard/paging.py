"""Newest-first lists with "newer" and "older" links, paged by keyset cursors as the KFP API pages.

A page link carries a token made by `kfp.listing.encode_token` (signed, so a visitor cannot forge a
cursor): the sort value and id of the row to continue from, and the direction. "Older" continues
after the page's last row in descending order; "newer" continues after its first row in ascending
order, and that page is shown reversed. Filters travel as plain query parameters beside the token,
and the profile filter (`view.namespaces`) is applied anew to every page, before paging.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from flowdeck.controlplane.auth import Access
from flowdeck.controlplane.errors import ApiError
from flowdeck.controlplane.kfp import listing
from flowdeck.controlplane.kfp.listing import ListParams
from flowdeck.store.catalog import ListQuery, Page, Predicate

#: The page sizes a list offers; the first-listed default is `DEFAULT_SIZE`.
SIZES = (20, 50, 100, 200)
DEFAULT_SIZE = 50


@dataclass(frozen=True)
class Paged:
    """One page of a list, in display order (newest first), with the tokens of its neighbours."""

    rows: Sequence[Any]
    total: int
    newer: str | None
    older: str | None


def page_size(text: str | None) -> int:
    """The `size` query parameter: one of `SIZES` (a 400 naming them otherwise)."""
    if not text:
        return DEFAULT_SIZE
    if not text.isdigit() or int(text) not in SIZES:
        raise ApiError(400, f"page size must be one of {', '.join(map(str, SIZES))}, not {text[:20]!r}")
    return int(text)


def newest_first(list_page: Callable[[ListQuery], Page], fields: listing.Fields, access: Access, *,
                 token: str | None, size: int, predicates: tuple[Predicate, ...],
                 namespaces: Collection[str] | None, sort: str = "created_at") -> Paged:
    """The page `token` points at (the first without one) of `list_page`, sorted by `sort` descending."""
    if token:
        query = listing.build_query(fields, ListParams(page_token=token, page_size=size), access=access,
                                    extra=predicates, scoped=False)  # the namespaces are the caller's
        query = replace(query, namespaces=namespaces)
    else:
        query = ListQuery(predicates=predicates, sort=sort, desc=True, page_size=size, namespaces=namespaces)
    result = list_page(query)
    rows = list(result.rows)
    if query.desc:  # the first page, or an "older" one
        newer = _token(fields, query.sort, rows[0], forward=False) if token and rows else None
        older = _token(fields, query.sort, rows[-1], forward=True) if result.after else None
    else:  # a "newer" page: read upwards from its last row, shown the other way round
        rows.reverse()
        newer = _token(fields, query.sort, rows[0], forward=False) if result.after else None
        older = _token(fields, query.sort, rows[-1], forward=True) if rows else None
    return Paged(rows=rows, total=result.total_size, newer=newer, older=older)


def _token(fields: listing.Fields, sort: str, row: Any, *, forward: bool) -> str:
    return listing.encode_token(fields, ListQuery(sort=sort, desc=forward), (getattr(row, sort), row.id))


def page_link(request: Request, token: str | None) -> str | None:
    """This page's URL (path and query) with `page_token` set to `token`; None without a token."""
    if token is None:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "page_token"]
    return f"{request.url.path}?{urlencode([*params, ('page_token', token)])}"
