"""The protobuf messages of the Open Inference Protocol's gRPC API, built at runtime from the table below.

Why not generated `*_pb2.py` files: generated code pins the protobuf runtime to the protoc that made
it, and it registers `inference.*` in protobuf's default pool, where tritonclient (or any other OIP
client imported into the same process) registers the same names and the second import fails. Here
the messages live in a private pool, so they coexist with any client's, and the protobuf package is
the only dependency. Only the wire format matters for compatibility: field numbers and types follow
the OIP `open_inference_grpc.proto` (kserve/open-inference-protocol), and the repository messages
follow Triton's `grpc_service.proto`, which is what tritonclient sends; a test checks both against
tritonclient's own descriptors.

Table syntax, one `(field, number, type)` per field: `type` is a scalar (`bool`, `int64`, `string`...),
a message name (dotted for nested messages, which follow their parent), `repeated T`, `map T`
(`map<string, T>`), or `oneof GROUP T`.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
#: The service name clients call (`/inference.GRPCInferenceService/ModelInfer`...).
SERVICE = f"{PACKAGE}.GRPCInferenceService"

_Field = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bool": _Field.TYPE_BOOL, "int32": _Field.TYPE_INT32, "int64": _Field.TYPE_INT64,
    "uint32": _Field.TYPE_UINT32, "uint64": _Field.TYPE_UINT64, "float": _Field.TYPE_FLOAT,
    "double": _Field.TYPE_DOUBLE, "string": _Field.TYPE_STRING, "bytes": _Field.TYPE_BYTES,
}

_MESSAGES: dict[str, list[tuple[str, int, str]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool")],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool")],
    "ModelReadyRequest": [("name", 1, "string"), ("version", 2, "string")],
    "ModelReadyResponse": [("ready", 1, "bool")],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [("name", 1, "string"), ("version", 2, "string"), ("extensions", 3, "repeated string")],
    "ModelMetadataRequest": [("name", 1, "string"), ("version", 2, "string")],
    "ModelMetadataResponse": [
        ("name", 1, "string"), ("versions", 2, "repeated string"), ("platform", 3, "string"),
        ("inputs", 4, "repeated ModelMetadataResponse.TensorMetadata"),
        ("outputs", 5, "repeated ModelMetadataResponse.TensorMetadata"), ("properties", 6, "map string"),
    ],
    "ModelMetadataResponse.TensorMetadata": [("name", 1, "string"), ("datatype", 2, "string"),
                                             ("shape", 3, "repeated int64")],
    "ModelInferRequest": [
        ("model_name", 1, "string"), ("model_version", 2, "string"), ("id", 3, "string"),
        ("parameters", 4, "map InferParameter"), ("inputs", 5, "repeated ModelInferRequest.InferInputTensor"),
        ("outputs", 6, "repeated ModelInferRequest.InferRequestedOutputTensor"),
        ("raw_input_contents", 7, "repeated bytes"),
    ],
    "ModelInferRequest.InferInputTensor": [
        ("name", 1, "string"), ("datatype", 2, "string"), ("shape", 3, "repeated int64"),
        ("parameters", 4, "map InferParameter"), ("contents", 5, "InferTensorContents"),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [("name", 1, "string"), ("parameters", 2, "map InferParameter")],
    "ModelInferResponse": [
        ("model_name", 1, "string"), ("model_version", 2, "string"), ("id", 3, "string"),
        ("parameters", 4, "map InferParameter"), ("outputs", 5, "repeated ModelInferResponse.InferOutputTensor"),
        ("raw_output_contents", 6, "repeated bytes"),
    ],
    "ModelInferResponse.InferOutputTensor": [
        ("name", 1, "string"), ("datatype", 2, "string"), ("shape", 3, "repeated int64"),
        ("parameters", 4, "map InferParameter"), ("contents", 5, "InferTensorContents"),
    ],
    "InferParameter": [
        ("bool_param", 1, "oneof parameter_choice bool"), ("int64_param", 2, "oneof parameter_choice int64"),
        ("string_param", 3, "oneof parameter_choice string"), ("double_param", 4, "oneof parameter_choice double"),
        ("uint64_param", 5, "oneof parameter_choice uint64"),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "repeated bool"), ("int_contents", 2, "repeated int32"),
        ("int64_contents", 3, "repeated int64"), ("uint_contents", 4, "repeated uint32"),
        ("uint64_contents", 5, "repeated uint64"), ("fp32_contents", 6, "repeated float"),
        ("fp64_contents", 7, "repeated double"), ("bytes_contents", 8, "repeated bytes"),
    ],
    # The model repository extension, as Triton (and so tritonclient) puts it in GRPCInferenceService.
    "ModelRepositoryParameter": [
        ("bool_param", 1, "oneof parameter_choice bool"), ("int64_param", 2, "oneof parameter_choice int64"),
        ("string_param", 3, "oneof parameter_choice string"), ("bytes_param", 4, "oneof parameter_choice bytes"),
    ],
    "RepositoryIndexRequest": [("repository_name", 1, "string"), ("ready", 2, "bool")],
    "RepositoryIndexResponse": [("models", 1, "repeated RepositoryIndexResponse.ModelIndex")],
    "RepositoryIndexResponse.ModelIndex": [("name", 1, "string"), ("version", 2, "string"), ("state", 3, "string"),
                                           ("reason", 4, "string")],
    "RepositoryModelLoadRequest": [("repository_name", 1, "string"), ("model_name", 2, "string"),
                                   ("parameters", 3, "map ModelRepositoryParameter")],
    "RepositoryModelLoadResponse": [],
    "RepositoryModelUnloadRequest": [("repository_name", 1, "string"), ("model_name", 2, "string"),
                                     ("parameters", 3, "map ModelRepositoryParameter")],
    "RepositoryModelUnloadResponse": [],
}


def _set_type(field: descriptor_pb2.FieldDescriptorProto, type_name: str) -> None:
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
    else:
        field.type = _Field.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{type_name}"


def _file() -> descriptor_pb2.FileDescriptorProto:
    """The table as a proto3 file descriptor."""
    file = descriptor_pb2.FileDescriptorProto(name="flowdeck/serving/open_inference_grpc.proto", package=PACKAGE,
                                              syntax="proto3")
    built: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full_name, fields in _MESSAGES.items():
        parent, _, name = full_name.rpartition(".")
        message = (built[parent].nested_type if parent else file.message_type).add(name=name)
        built[full_name] = message
        oneofs: dict[str, int] = {}
        for field_name, number, spec in fields:
            words = spec.split()
            field = message.field.add(name=field_name, number=number, json_name=_camel(field_name),
                                      label=_Field.LABEL_OPTIONAL)
            if words[0] == "repeated":
                field.label = _Field.LABEL_REPEATED
                _set_type(field, words[1])
            elif words[0] == "map":  # map<string, T>: a repeated nested `<Field>Entry {key = 1; value = 2}`
                entry = message.nested_type.add(name=f"{_camel(field_name, upper=True)}Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, json_name="key", label=_Field.LABEL_OPTIONAL,
                                type=_Field.TYPE_STRING)
                _set_type(entry.field.add(name="value", number=2, json_name="value", label=_Field.LABEL_OPTIONAL),
                          words[1])
                field.label = _Field.LABEL_REPEATED
                _set_type(field, f"{full_name}.{entry.name}")
            elif words[0] == "oneof":
                if words[1] not in oneofs:
                    oneofs[words[1]] = len(message.oneof_decl)
                    message.oneof_decl.add(name=words[1])
                field.oneof_index = oneofs[words[1]]
                _set_type(field, words[2])
            else:
                _set_type(field, words[0])
    return file


def _camel(name: str, upper: bool = False) -> str:
    first, *rest = name.split("_")
    return (first.capitalize() if upper else first) + "".join(word.capitalize() for word in rest)


def _classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in _MESSAGES}


_CLASSES = _classes()
ServerLiveRequest = _CLASSES["ServerLiveRequest"]
ServerLiveResponse = _CLASSES["ServerLiveResponse"]
ServerReadyRequest = _CLASSES["ServerReadyRequest"]
ServerReadyResponse = _CLASSES["ServerReadyResponse"]
ModelReadyRequest = _CLASSES["ModelReadyRequest"]
ModelReadyResponse = _CLASSES["ModelReadyResponse"]
ServerMetadataRequest = _CLASSES["ServerMetadataRequest"]
ServerMetadataResponse = _CLASSES["ServerMetadataResponse"]
ModelMetadataRequest = _CLASSES["ModelMetadataRequest"]
ModelMetadataResponse = _CLASSES["ModelMetadataResponse"]
ModelInferRequest = _CLASSES["ModelInferRequest"]
ModelInferResponse = _CLASSES["ModelInferResponse"]
InferParameter = _CLASSES["InferParameter"]
InferTensorContents = _CLASSES["InferTensorContents"]
RepositoryIndexRequest = _CLASSES["RepositoryIndexRequest"]
RepositoryIndexResponse = _CLASSES["RepositoryIndexResponse"]
RepositoryModelLoadRequest = _CLASSES["RepositoryModelLoadRequest"]
RepositoryModelLoadResponse = _CLASSES["RepositoryModelLoadResponse"]
RepositoryModelUnloadRequest = _CLASSES["RepositoryModelUnloadRequest"]
RepositoryModelUnloadResponse = _CLASSES["RepositoryModelUnloadResponse"]
