"""KServe V1 (TensorFlow-Serving style) REST codec: `{"instances": [...]}` in, `{"predictions": [...]}` out.

The body is parsed as JSON whatever the Content-Type says: KServe passes `curl -d` bodies (a form
content type) to the model as raw bytes and answers 500, which is the most common first-request
failure its users hit. The decoded payload is the plain dict KServe models receive, so ported model
code reads it the same way.
"""

from __future__ import annotations

from typing import Any

import orjson

from flowdeck.serving.errors import ServingError, bad_request

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def decode_request(body: bytes) -> dict[str, Any]:
    """The request's JSON object; `instances`/`inputs`, when present, must be lists."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise bad_request('the request must be a JSON object such as {"instances": [...]}')
    for key in ("instances", "inputs"):
        if key in payload and not isinstance(payload[key], list):
            raise bad_request(f'"{key}" must be a list')
    return payload


def instances(payload: dict[str, Any]) -> list[Any]:
    """The rows to predict on: `instances` or, equivalently, `inputs`."""
    rows = payload.get("instances", payload.get("inputs"))
    if rows is None:
        raise bad_request('the request needs "instances" (or "inputs"): a list of rows')
    return rows


def encode_response(result: Any) -> bytes:
    """The JSON body for whatever the model's postprocess returned (numpy arrays included)."""
    try:
        return orjson.dumps(result, option=_NUMPY)
    except TypeError as exc:
        raise ServingError(500, f"the model's response is not JSON-serialisable: {exc}") from None
