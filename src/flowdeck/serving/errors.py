"""The one error type of the serving data plane, so every non-2xx answer has the same shape.

KServe and the Open Inference Protocol answer errors as `{"error": "<message>"}`; clients such as
tritonclient read exactly that key. Code anywhere on the request path raises `ServingError` with the
status the client should see (400 for its own mistakes, 404 unknown model, 503 not ready, 501 not
implemented); the app turns it into the body. Anything else escaping a model is a 500.
"""

from __future__ import annotations


class ServingError(Exception):
    """A request that cannot be answered normally: `status` is the HTTP status, `message` the error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ServingError:
    """A 400: the client sent something we cannot use."""
    return ServingError(400, message)


def model_not_found(name: str) -> ServingError:
    """A 404 naming the model that does not exist."""
    return ServingError(404, f"model '{name}' does not exist")


def model_not_ready(name: str) -> ServingError:
    """A 503 naming the model that exists but cannot answer yet."""
    return ServingError(503, f"model '{name}' is not ready")
