"""`flowdeck serve`: serve one model over KServe V1 and Open Inference Protocol V2, without the control plane."""

from __future__ import annotations

from pathlib import Path

import click

from flowdeck.cli.common import FAILURE, CLIError

FORMATS = "sklearn, xgboost, lightgbm, pytorch, onnx, custom"


@click.command()
@click.argument("model_path", metavar="MODEL_PATH")
@click.option("--name", required=True, help="The model's name in URLs (/v1/models/NAME, /v2/models/NAME).")
@click.option("--format", "model_format", default=None, metavar="FORMAT",
              help=f"Model format ({FORMATS}); default: from the file name.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the model to the network.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="HTTP port (0: any free port; the printed URL names it).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port, each with its own copy of the model.")
@click.option("--model-threads", default=None, type=click.IntRange(1, 256),
              help="Threads running the model's sync code per process (default: min(4, CPUs)).")
@click.option("--max-batch-size", default=1, show_default=True, type=click.IntRange(1, 65536),
              help="Adaptive batching: rows of concurrent requests predicted in one call (1: off).")
@click.option("--max-batch-latency-ms", default=2.0, show_default=True, type=click.FloatRange(0, 10_000),
              help="Adaptive batching: longest a request waits for others to join its batch.")
@click.option("--grpc-port", default=None, type=click.IntRange(0, 65535),
              help="Also serve the V2 gRPC API (inference.GRPCInferenceService) on this port (0: any free port, "
                   "printed). Off unless given.")
@click.option("--grpc-max-message-mb", default=256, show_default=True, type=click.IntRange(1, 2047),
              help="Largest gRPC request or response, in MiB.")
def serve(model_path: str, name: str, model_format: str | None, host: str, port: int, workers: int,
          model_threads: int | None, max_batch_size: int, max_batch_latency_ms: float, grpc_port: int | None,
          grpc_max_message_mb: int) -> None:
    """Serve the model at MODEL_PATH until Ctrl-C.

    MODEL_PATH is a model file, a directory in KServe's layout (model.joblib, model.pkl, model.bst,
    model.txt, model.pt, model.onnx or model.py inside), or, for a custom model, FILE.py[:Class] or
    module:Class naming a flowdeck.serving.Model subclass. Ready once /v2/health/ready answers 200.

    \b
    Examples:
      flowdeck serve ./iris --name iris
      flowdeck serve model.joblib --name iris --port 9000 --workers 2
      flowdeck serve my_model.py:Predictor --name custom
      flowdeck serve ./iris --name iris --grpc-port 8081
      curl -d '{"instances": [[6.8, 2.8, 4.8, 1.4]]}' http://127.0.0.1:8080/v1/models/iris:predict
    """
    try:
        from flowdeck.serving.server import ServeError, ServeOptions
        from flowdeck.serving.server import serve as run_server
    except ImportError as exc:
        raise CLIError(f"serving needs extra packages ({exc.name} is missing): pip install 'flowdeck[serving]'",
                       FAILURE) from None
    if ":" not in model_path and not Path(model_path).exists():
        raise CLIError(f"{model_path} does not exist")
    options = ServeOptions(model_path, name, model_format, host, port, workers, model_threads, max_batch_size,
                           max_batch_latency_ms, grpc_port, grpc_max_message_mb * 1024 * 1024)
    try:
        run_server(options)
    except ServeError as exc:
        raise CLIError(str(exc), FAILURE) from None
