"""The transformer -> predictor hop: where a transformer's default `predict` sends the request it preprocessed.

KServe's transformer pattern: a `Model` that overrides only `preprocess`/`postprocess` and is served with
`--predictor_host HOST:PORT`; its inherited `predict` forwards to the predictor over V1 or V2 REST.
`PredictorConfig` mirrors KServe's (same names), set process-wide by `ModelServer` from the command line
or per model by the legacy `self.predictor_host` attribute. Only the headers KServe forwards go along
(`x-request-id`, `x-b3-traceid`, `authorization`). A predictor that cannot be reached answers 502, one
that times out 504; the predictor's own 4xx/503 answers pass through with their message, so a client
mistake found by the predictor is still the client's 4xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from flowdeck.serving import v2
from flowdeck.serving.errors import ServingError
from flowdeck.serving.tensors import InferRequest

#: Request headers a transformer passes on to its predictor (KServe's list).
FORWARDED_HEADERS = ("x-request-id", "x-b3-traceid", "authorization")
#: `--predictor_protocol` values this server can speak to a predictor.
PROTOCOLS = ("v1", "v2")


@dataclass(frozen=True)
class PredictorConfig:
    """Where and how a transformer reaches its predictor (KServe's `PredictorConfig`)."""

    predictor_host: str
    predictor_protocol: str = "v1"
    predictor_use_ssl: bool = False
    predictor_request_timeout_seconds: float = 600
    predictor_request_retries: int = 0
    predictor_health_check: bool = False

    def __post_init__(self) -> None:
        if self.predictor_protocol not in PROTOCOLS:
            raise ValueError(f"predictor protocol {self.predictor_protocol!r} is not supported here "
                             f"(use one of: {', '.join(PROTOCOLS)})")

    @property
    def predictor_base_url(self) -> str:
        host = self.predictor_host
        if host.startswith(("http://", "https://")):
            return host.rstrip("/")
        return f"{'https' if self.predictor_use_ssl else 'http'}://{host}"


_process_config: PredictorConfig | None = None


def set_process_config(config: PredictorConfig | None) -> None:
    """Set the predictor every transformer model in this process forwards to (`ModelServer` does, from its flags)."""
    global _process_config
    _process_config = config


def process_config() -> PredictorConfig | None:
    """The process-wide predictor config, if `--predictor_host` was given."""
    return _process_config


class PredictorClient:
    """Sends a transformer's requests to its predictor over one keep-alive connection pool."""

    def __init__(self, config: PredictorConfig) -> None:
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.predictor_base_url, timeout=config.predictor_request_timeout_seconds,
            transport=httpx.AsyncHTTPTransport(retries=config.predictor_request_retries))

    async def predict(self, model_name: str, payload: Any, headers: dict[str, str] | None) -> Any:
        """The predictor's answer for `payload`: a dict for V1 (or a V1-shaped dict), an InferResponse for V2."""
        forwarded = {key: headers[key] for key in FORWARDED_HEADERS if headers and key in headers}
        if isinstance(payload, InferRequest):
            if self.config.predictor_protocol != "v2":
                raise ServingError(500, "preprocess returned a V2 InferRequest but the predictor speaks V1 "
                                        "(serve the transformer with --predictor_protocol v2)")
            body, header_length = v2.encode_request(payload)
            answer = await self._post(f"/v2/models/{model_name}/infer", body, {
                **forwarded, "content-type": "application/octet-stream",
                "inference-header-content-length": str(header_length)})
            try:
                return v2.decode_response(answer.content, answer.headers.get("inference-header-content-length"))
            except (ServingError, ValueError) as exc:
                raise ServingError(502, f"the predictor's V2 answer cannot be read: {exc}") from None
        path = f"/v1/models/{model_name}:predict" if self.config.predictor_protocol == "v1" \
            else f"/v2/models/{model_name}/infer"
        try:
            body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError as exc:
            raise ServingError(500, f"preprocess returned something that is not JSON: {exc}") from None
        answer = await self._post(path, body, {**forwarded, "content-type": "application/json"})
        try:
            return orjson.loads(answer.content)
        except orjson.JSONDecodeError as exc:
            raise ServingError(502, f"the predictor's answer is not JSON: {exc}") from None

    async def _post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            answer = await self._client.post(path, content=body, headers=headers)
        except httpx.TimeoutException:
            raise ServingError(504, f"the predictor at {self.config.predictor_host} did not answer within "
                                    f"{self.config.predictor_request_timeout_seconds:g} s") from None
        except httpx.HTTPError as exc:
            raise ServingError(502, f"cannot reach the predictor at {self.config.predictor_host}: {exc}") from None
        if answer.status_code != 200:
            raise ServingError(answer.status_code if 400 <= answer.status_code < 600 else 502,
                               f"predictor: {_message(answer)}")
        return answer

    async def aclose(self) -> None:
        await self._client.aclose()


def _message(answer: httpx.Response) -> str:
    try:
        document = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return answer.text[:200] or f"HTTP {answer.status_code}"
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return document["error"]
    return str(document)[:200]

