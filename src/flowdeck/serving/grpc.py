"""Open Inference Protocol over gRPC: `inference.GRPCInferenceService` for the models of a `ModelRepository`.

Why a second protocol: tritonclient.grpc, kserve's InferenceGRPCClient and KServe transformers talk
gRPC to predictors. It runs on grpcio's asyncio server in the same event loop as the HTTP app and
answers for the same repository, so a model loaded, unloaded or batched over one protocol is so over
the other. Tensors go through the REST codec's shared checks (`v2.tensor_spec`, `v2.binary_array`,
`v2.cast_in_range`, `v2.select_outputs`...), so both protocols accept and refuse the same requests
with the same messages; each `ServingError` status maps to a gRPC status code (400 INVALID_ARGUMENT,
404 NOT_FOUND, 503 UNAVAILABLE, 501 UNIMPLEMENTED; anything unexpected INTERNAL).

Outputs go back in `raw_output_contents` (as Triton does, and the only form tritonclient decodes for
numbers) unless the request itself sent typed `contents` and every output has a typed field; FP16 and
BF16 exist only raw. The repository RPCs have Triton's message shapes (what tritonclient sends).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from flowdeck import __version__
from flowdeck.serving import oip_proto as pb
from flowdeck.serving import v2
from flowdeck.serving.app import EXTENSIONS, MAX_BODY_BYTES
from flowdeck.serving.errors import ServingError, bad_request
from flowdeck.serving.metrics import Measured, Metrics
from flowdeck.serving.model import ModelRepository
from flowdeck.serving.tensors import InferRequest, InferResponse, RequestedOutput, Tensor

log = logging.getLogger("flowdeck.serving")

_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
          413: grpc.StatusCode.RESOURCE_EXHAUSTED, 501: grpc.StatusCode.UNIMPLEMENTED,
          503: grpc.StatusCode.UNAVAILABLE}
#: Datatype -> the InferTensorContents field carrying it, and that field's element dtype (FP16/BF16: none).
_CONTENTS: dict[str, tuple[str, np.dtype]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)), "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)), "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)), "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)), "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)), "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)), "BYTES": ("bytes_contents", np.dtype(object)),
}
_INT64_MAX = 2**63 - 1


def decode_request(message: Any) -> tuple[InferRequest, bool]:
    """A `ModelInferRequest` as an `InferRequest`, and whether its tensors came in raw_input_contents."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise bad_request(f"raw_input_contents has {len(raw)} entries but the request has {len(message.inputs)} "
                          "inputs (one entry per input, in order)")
    if not message.inputs:
        raise bad_request("'inputs' must be a non-empty list of tensors")
    inputs = []
    for index, item in enumerate(message.inputs):
        name, datatype, shape = item.name, item.datatype, list(item.shape)
        dtype, count = v2.tensor_spec(name, datatype, shape)
        if raw:
            if item.HasField("contents"):
                raise bad_request(f"input '{name}': a request with raw_input_contents cannot also set contents")
            data = raw[index]
            array = v2.binary_array(name, datatype, dtype, shape, count, data, 0, len(data),
                                    "its raw_input_contents entry's size")
        else:
            array = _contents_array(name, datatype, dtype, shape, count, item.contents)
        inputs.append(Tensor(name, datatype, shape, array, _parameters(item.parameters)))
    v2.check_unique_names(inputs)
    outputs = [RequestedOutput(wanted.name, None, _parameters(wanted.parameters)) for wanted in message.outputs]
    request = InferRequest(message.model_name, inputs, message.id or None, outputs or None,
                           _parameters(message.parameters))
    return request, bool(raw)


def _contents_array(name: str, datatype: str, dtype: np.dtype, shape: list[int], count: int,
                    contents: Any) -> np.ndarray:
    field, field_dtype = _CONTENTS.get(datatype, ("", dtype))
    if not field:
        raise bad_request(f"input '{name}': {datatype} data can only be sent in raw_input_contents")
    for descriptor, _ in contents.ListFields():
        if descriptor.name != field:
            raise bad_request(f"input '{name}': {datatype} data belongs in contents.{field}, "
                              f"not contents.{descriptor.name}")
    values = getattr(contents, field)
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    else:
        array = v2.cast_in_range(name, datatype, dtype, np.fromiter(values, field_dtype, len(values)))
    return v2.shaped(name, shape, count, array, "its contents")


def _parameters(parameters: Any) -> dict[str, Any] | None:
    """A map of InferParameter values as a plain dict."""
    if not parameters:
        return None
    return {key: getattr(value, value.WhichOneof("parameter_choice") or "string_param")
            for key, value in parameters.items()}


def encode_response(response: InferResponse, request: InferRequest, raw: bool) -> Any:
    """The `ModelInferResponse` for a model's response: raw outputs unless the request used typed contents."""
    selected = [tensor for tensor, _ in v2.select_outputs(response, request)]
    raw = raw or any(tensor.datatype not in _CONTENTS for tensor in selected)
    message = pb.ModelInferResponse(model_name=response.model_name, model_version=response.model_version or "",
                                    id=response.id or "")
    _set_parameters(message.parameters, response.parameters)
    for tensor in selected:
        flat = v2.flat_output(tensor)
        output = message.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        _set_parameters(output.parameters, tensor.parameters)
        if raw:
            message.raw_output_contents.append(v2.raw_output(tensor.datatype, flat))
        elif tensor.datatype == "BYTES":
            output.contents.bytes_contents.extend(v2.as_bytes(item) for item in flat)
        else:
            getattr(output.contents, _CONTENTS[tensor.datatype][0]).extend(flat.tolist())
    return message


def _set_parameters(target: Any, parameters: dict[str, Any] | None) -> None:
    for key, value in (parameters or {}).items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, (int, np.integer)):
            if value > _INT64_MAX:
                target[key].uint64_param = int(value)
            else:
                target[key].int64_param = int(value)
        elif isinstance(value, (float, np.floating)):
            target[key].double_param = float(value)
        elif isinstance(value, str):
            target[key].string_param = value
        else:
            raise ServingError(500, f"parameter '{key}' is a {type(value).__name__}; gRPC parameters are "
                                    "bool, int, float or str")


class InferenceService:
    """The RPCs of `inference.GRPCInferenceService`, answered from `repository`."""

    def __init__(self, repository: ModelRepository, metrics: Metrics | None = None) -> None:
        self.repository = repository
        self.metrics = metrics

    async def server_live(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=self.repository.is_ready())

    async def model_ready(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Ready or not for a known model (one known but unloaded is not ready); NOT_FOUND for an unknown one."""
        try:
            model = self._model(request.name, request.version)
        except ServingError as exc:
            if exc.status != 503:
                raise
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=model.ready)

    async def server_metadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerMetadataResponse(name="flowdeck", version=__version__, extensions=EXTENSIONS)

    async def model_metadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        metadata = v2.model_metadata(self._model(request.name, request.version))
        return pb.ModelMetadataResponse(
            name=metadata["name"], versions=metadata.get("versions", []), platform=metadata["platform"],
            inputs=[_tensor_metadata(tensor) for tensor in metadata["inputs"]],
            outputs=[_tensor_metadata(tensor) for tensor in metadata["outputs"]])

    async def model_infer(self, message: Any, context: grpc.aio.ServicerContext) -> Any:
        runner = self.repository.get(message.model_name)
        model = runner.model
        if message.model_version and message.model_version != model.version:
            raise ServingError(404, f"model '{model.name}' has no version '{message.model_version}'")
        with Measured(self.metrics, model.name, "grpc"):
            request, raw = decode_request(message)
            headers = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
            result = await runner(request, headers)
            return encode_response(v2.as_response(result, request, model), request, raw)

    async def repository_index(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.RepositoryIndexResponse(models=self.repository.index(request.ready))

    async def repository_model_load(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.repository.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def repository_model_unload(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.repository.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    def _model(self, name: str, version: str) -> Any:
        model = self.repository.get(name).model
        if version and version != model.version:
            raise ServingError(404, f"model '{name}' has no version '{version}'")
        return model

    def handler(self) -> grpc.GenericRpcHandler:
        """The gRPC handler routing `/inference.GRPCInferenceService/<Rpc>` to these methods."""
        rpcs = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": (self.model_infer, pb.ModelInferRequest),
            "RepositoryIndex": (self.repository_index, pb.RepositoryIndexRequest),
            "RepositoryModelLoad": (self.repository_model_load, pb.RepositoryModelLoadRequest),
            "RepositoryModelUnload": (self.repository_model_unload, pb.RepositoryModelUnloadRequest),
        }
        return grpc.method_handlers_generic_handler(pb.SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(_answering_errors(method), request_deserializer=kind.FromString,
                                                      response_serializer=_serialize)
            for name, (method, kind) in rpcs.items()})


def _tensor_metadata(tensor: dict[str, Any]) -> dict[str, Any]:
    return {"name": tensor["name"], "datatype": tensor["datatype"], "shape": tensor["shape"]}


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()


Rpc = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _answering_errors(method: Rpc) -> Rpc:
    """`method`, with a `ServingError` answered as its gRPC status and anything else as INTERNAL."""

    async def rpc(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(request, context)
        except ServingError as exc:
            code, message = _CODES.get(exc.status, grpc.StatusCode.INTERNAL), exc.message
        except Exception as exc:  # a fault of ours or of the model's code: logged, answered INTERNAL
            log.exception("error answering gRPC %s", method.__name__)
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
        await context.abort(code, message)

    return rpc


class GRPCServer:
    """A grpc.aio server for `repository` on host:port; start it inside the event loop that serves HTTP."""

    def __init__(self, repository: ModelRepository, metrics: Metrics | None = None, host: str = "127.0.0.1",
                 port: int = 8081, max_message_bytes: int = MAX_BODY_BYTES) -> None:
        self.service = InferenceService(repository, metrics)
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.host = host
        self.requested_port = port
        self.max_message_bytes = max_message_bytes
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        """Listen and answer; returns the port (the one picked when asked for port 0). OSError if it cannot bind."""
        options = [("grpc.max_receive_message_length", self.max_message_bytes),
                   ("grpc.max_send_message_length", self.max_message_bytes),
                   ("grpc.so_reuseport", 0)]  # a port in use is an error, not silently shared
        if self.requested_port:
            _check_free(self.host, self.requested_port)
        server = grpc.aio.server(handlers=[self.service.handler()], options=options)
        try:
            port = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {self.address}: {exc}") from None
        if not port:
            raise OSError(f"cannot listen for gRPC on {self.address}")
        await server.start()
        self._server, self.port = server, port
        return port

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls; those in flight get `grace` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None


def _check_free(host: str, port: int) -> None:
    """One clear line for a port in use, before grpc would log its own error and refuse less clearly."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc does: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(f"gRPC port {port} on {host} is in use (pick another with --grpc-port)") from None
            raise OSError(f"cannot listen for gRPC on {host}:{port}: {exc.strerror or exc}") from None
