"""Custom Python models: a `Model` subclass in a .py file (`model.py`, `file.py:Class`) or a module (`pkg.mod:Class`).

This is how a KServe custom predictor ports: change `import kserve` / `kserve.Model` to
`flowdeck.serving.Model` and point `flowdeck serve` at the file. The class is constructed as
`Class(name)`, like KServe's examples, and loaded if its constructor did not already.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from flowdeck.serving.formats import ModelLoadError
from flowdeck.serving.model import Model


def load_custom(name: str, spec: str | Path) -> Model:
    """Construct and load the Model subclass that `spec` names."""
    target, _, class_name = str(spec).rpartition(":") if ":" in str(spec) else (str(spec), "", "")
    module = _import_file(Path(target)) if target.endswith(".py") or Path(target).exists() else _import(target)
    cls = _model_class(module, class_name)
    try:
        model = cls(name)
        if not model.ready:
            model.load()
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{cls.__name__}('{name}') failed to load: {type(exc).__name__}: {exc}") from None
    return model


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"cannot import {module_name}: {exc}") from None


def _import_file(path: Path) -> ModuleType:
    if path.is_dir():
        path = path / "model.py"
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist")
    module_name = "flowdeck_custom_model_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look classes up by module
    sys.path.insert(0, str(path.parent))  # so the file can import its neighbours, as when run as a script
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ModelLoadError(f"{path} failed to import: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def _model_class(module: ModuleType, class_name: str) -> type[Model]:
    if class_name:
        cls = getattr(module, class_name, None)
        if not (inspect.isclass(cls) and issubclass(cls, Model)):
            raise ModelLoadError(f"{module.__name__} has no Model subclass named {class_name}")
        return cls
    found = [cls for cls in vars(module).values()
             if inspect.isclass(cls) and issubclass(cls, Model) and cls.__module__ == module.__name__]
    if len(found) != 1:
        names = ", ".join(cls.__name__ for cls in found) or "none"
        raise ModelLoadError(f"expected exactly one flowdeck.serving.Model subclass in the file, found {names}; "
                             "name one as FILE.py:Class")
    return found[0]
