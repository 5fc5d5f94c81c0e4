"""Model serving: KServe V1 and Open Inference Protocol (V2) data plane, `flowdeck serve`.

A custom model subclasses `Model` exactly as a KServe model subclasses `kserve.Model`; V2 requests
reach it as `InferRequest` (inputs are `Tensor`s with `as_numpy()`), and it may answer with an
`InferResponse`.
"""

from flowdeck.serving.errors import ServingError
from flowdeck.serving.model import Model
from flowdeck.serving.tensors import InferRequest, InferResponse, RequestedOutput, Tensor

__all__ = ["InferRequest", "InferResponse", "Model", "RequestedOutput", "ServingError", "Tensor"]
