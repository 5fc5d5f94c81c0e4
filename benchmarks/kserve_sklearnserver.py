"""KServe's sklearn model server as its `sklearnserver` package runs it, for serving_vs_kserve.py.

kserve==0.21 is on PyPI, but its sklearn runtime (python/sklearnserver in kserve's repository, shipped only as
the kserve-sklearnserver image) is not. This module reproduces that runtime on kserve's own classes, so the
benchmark times KServe's real request path:

- the same command line: kserve.model_server's parser plus `--model_dir` (kserve itself parses sys.argv for
  `--http_port`, `--enable_latency_logging`, `--log_config_file`, ...), and `configure_logging` as
  sklearnserver's __main__ calls it;
- a `kserve.Model` whose load() joblib-loads the one .joblib/.pkl/.pickle file in model_dir and whose predict()
  is sklearnserver's: `get_predict_response(payload, model.predict(get_predict_input(payload)), name)`, errors
  raised as kserve's InferenceError;
- `kserve.ModelServer().start([model])`: FastAPI + uvicorn, one process, gRPC on, logging as kserve ships it.

One change: kserve hard-codes its REST and gRPC listeners to 0.0.0.0 and [::]; here they bind 127.0.0.1, since
the benchmark only sends loopback traffic on a shared machine.

Runs in the kserve venv only: `python kserve_sklearnserver.py --model_dir DIR --model_name NAME --http_port N
--grpc_port M`.
"""

import os
import pathlib
import sys

import grpc.aio
import joblib
import uvicorn

LOOPBACK = "127.0.0.1"
MODEL_EXTENSIONS = (".joblib", ".pkl", ".pickle")


class _LoopbackConfig(uvicorn.Config):
    def __init__(self, *args, **kwargs):
        kwargs["host"] = LOOPBACK
        super().__init__(*args, **kwargs)


_add_insecure_port = grpc.aio._server.Server.add_insecure_port


def _loopback_port(self, address):
    return _add_insecure_port(self, address.replace("[::]", LOOPBACK, 1))


uvicorn.Config = _LoopbackConfig  # kserve.protocol.rest.server calls uvicorn.Config(host="0.0.0.0", ...)
grpc.aio._server.Server.add_insecure_port = _loopback_port

import kserve  # noqa: E402  (after the patches: kserve parses sys.argv and builds its servers on import)
from kserve import logging as kserve_logging  # noqa: E402
from kserve.errors import InferenceError, ModelMissingError  # noqa: E402
from kserve.utils.utils import get_predict_input, get_predict_response  # noqa: E402

parser = kserve.model_server.parser
parser.add_argument("--model_dir", required=True, help="a local directory holding one model file")


class SKLearnModel(kserve.Model):
    """sklearnserver's model: one joblib file, predict through kserve's V1/V2 payload helpers."""

    def __init__(self, name, model_dir):
        super().__init__(name)
        self.model_dir = model_dir
        self.ready = False

    def load(self):
        files = [path for path in pathlib.Path(self.model_dir).iterdir()
                 if path.is_file() and path.name.endswith(MODEL_EXTENSIONS)]
        if not files:
            raise ModelMissingError(self.model_dir)
        if len(files) > 1:
            raise RuntimeError(f"more than one model file in {self.model_dir}: {files}")
        self._model = joblib.load(files[0])
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        try:
            instances = get_predict_input(payload)
            if os.environ.get("PREDICT_PROBA", "false").lower() == "true" and hasattr(self._model, "predict_proba"):
                result = self._model.predict_proba(instances)
            else:
                result = self._model.predict(instances)
            return get_predict_response(payload, result, self.name)
        except Exception as exc:
            raise InferenceError(str(exc)) from exc


def main() -> int:
    args, _ = parser.parse_known_args()
    if args.configure_logging:
        kserve_logging.configure_logging(args.log_config_file)
    model = SKLearnModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer().start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
