"""Model formats: which file in a model directory means which runtime, and `load_model` to load one.

MODEL_PATH is a model file or a directory in KServe's layout (`model.joblib` inside, as KServe's
`storageUri` directories hold). The format comes from `--format` or from the file name; each format
lives in its own module, imported only when used, so a missing heavy runtime (xgboost, torch...) only
matters to the models that need it and is reported as one line naming the extra to install.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowdeck.serving.model import Model


class ModelLoadError(Exception):
    """A model cannot be loaded: a missing file or runtime, an unknown format, a corrupt artifact."""


#: format -> (module:class implementing it, the file names that mean it inside a model directory).
FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sklearn": ("flowdeck.serving.formats.sklearn:SKLearnModel", ("model.joblib", "model.pkl", "model.pickle")),
    "xgboost": ("flowdeck.serving.formats.xgboost:XGBoostModel", ("model.bst", "model.json", "model.ubj")),
    "lightgbm": ("flowdeck.serving.formats.lightgbm:LightGBMModel", ("model.txt", "model.lgb")),
    "pytorch": ("flowdeck.serving.formats.torchscript:TorchScriptModel", ("model.pt", "model.pth")),
    "onnx": ("flowdeck.serving.formats.onnx:ONNXModel", ("model.onnx",)),
    "custom": ("flowdeck.serving.formats.custom:load_custom", ("model.py",)),
}
#: Other names KServe's `modelFormat.name` uses for the same formats.
ALIASES = {"scikit-learn": "sklearn", "xgb": "xgboost", "lgb": "lightgbm", "torchscript": "pytorch",
           "torch": "pytorch", "python": "custom"}
_SUFFIXES = {".joblib": "sklearn", ".pkl": "sklearn", ".pickle": "sklearn", ".bst": "xgboost", ".ubj": "xgboost",
             ".txt": "lightgbm", ".lgb": "lightgbm", ".pt": "pytorch", ".pth": "pytorch", ".onnx": "onnx",
             ".py": "custom"}


def load_model(path: str | Path, name: str, format: str | None = None) -> Model:
    """Load the model at `path` (a file, a KServe-layout directory, or `module:Class` for custom) as `name`."""
    fmt = _format_name(format) if format else None
    if fmt == "custom" or (fmt is None and _is_import_path(str(path))):
        from flowdeck.serving.formats.custom import load_custom

        return load_custom(name, str(path))
    file, fmt = find_model_file(Path(path), fmt)
    target, _ = FORMATS[fmt]
    module_name, attribute = target.split(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    model = factory(name, file)
    if not model.ready:
        model.load()
    return model


def _format_name(format: str) -> str:
    fmt = ALIASES.get(format.lower(), format.lower())
    if fmt not in FORMATS:
        raise ModelLoadError(f"unknown model format '{format}' (known: {', '.join(FORMATS)})")
    return fmt


def _is_import_path(text: str) -> bool:
    """Whether `text` is FILE.py:Class or module:Class."""
    module, _, attribute = text.rpartition(":")
    if not module or not attribute.isidentifier():
        return False
    return module.endswith(".py") or all(part.isidentifier() for part in module.split("."))


def find_model_file(path: Path, fmt: str | None = None) -> tuple[Path, str]:
    """The model file at `path` and its format: `path` itself, or the one known model file in the directory."""
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist")
    if path.is_file():
        detected = fmt or _SUFFIXES.get(path.suffix.lower())
        if detected is None:
            raise ModelLoadError(f"cannot tell the format of {path.name}; give --format ({', '.join(FORMATS)})")
        return path, detected
    candidates = [(path / file_name, name) for name, (_, files) in FORMATS.items() if fmt in (None, name)
                  for file_name in files if (path / file_name).is_file()]
    if not candidates:
        expected = ", ".join(file for name, (_, files) in FORMATS.items() if fmt in (None, name) for file in files)
        raise ModelLoadError(f"no model file in {path} (expected one of: {expected})")
    if len(candidates) > 1:
        found = ", ".join(file.name for file, _ in candidates)
        raise ModelLoadError(f"{path} holds more than one model file ({found}); point at one of them")
    return candidates[0]


def require(module: str, extra: str) -> ModuleType:
    """Import a model runtime, or fail with the one line that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelLoadError(f"this model needs {module}, which is not installed: "
                             f"pip install 'flowdeck[{extra}]'") from None
