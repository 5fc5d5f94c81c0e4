"""Model formats: finding the model file, custom models, and the one-line errors for what is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flowdeck.serving import InferRequest, Tensor
from flowdeck.serving.formats import ModelLoadError, find_model_file, load_model

CUSTOM = '''
import numpy as np
from flowdeck.serving import Model


class Doubler(Model):
    def __init__(self, name):
        super().__init__(name)
        self.load()

    def load(self):
        self.factor = 2
        self.ready = True

    def predict(self, payload, headers=None):
        return {"predictions": [row * self.factor for row in payload["instances"]]}
'''


def test_custom_model_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text(CUSTOM)
    for spec in (tmp_path, tmp_path / "model.py", f"{tmp_path / 'model.py'}:Doubler"):
        model = load_model(spec, "double")
        assert model.ready and model.predict({"instances": [1, 2]}) == {"predictions": [2, 4]}


def test_custom_model_from_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_doubler.py").write_text(CUSTOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_model("my_doubler:Doubler", "double")
    assert model.predict({"instances": [3]}) == {"predictions": [6]}
    sys.modules.pop("my_doubler", None)


def test_custom_model_errors(tmp_path: Path) -> None:
    (tmp_path / "none.py").write_text("x = 1\n")
    with pytest.raises(ModelLoadError, match="found none"):
        load_model(tmp_path / "none.py", "m")
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(ModelLoadError, match="broken.py failed to import: ModuleNotFoundError"):
        load_model(tmp_path / "broken.py", "m")
    with pytest.raises(ModelLoadError, match="no Model subclass named Nope"):
        load_model(f"{tmp_path / 'none.py'}:Nope", "m")


def test_sklearn_v1_and_v2_semantics(model_dir: Path, classifier) -> None:
    estimator, rows = classifier
    model = load_model(model_dir / "model.joblib", "iris")
    assert model.predict({"instances": rows.tolist()})["predictions"].tolist() == estimator.predict(rows).tolist()
    response = model.predict(InferRequest("iris", [Tensor.from_numpy("input-0", rows)], id="1"))
    assert [output.name for output in response.outputs] == ["output-0"]
    assert response.outputs[0].data.tolist() == estimator.predict(rows).tolist() and response.id == "1"


def test_model_file_detection(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        find_model_file(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="no model file in"):
        find_model_file(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"")
    assert find_model_file(tmp_path) == (tmp_path / "model.onnx", "onnx")
    (tmp_path / "model.pkl").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="more than one model file"):
        find_model_file(tmp_path)
    assert find_model_file(tmp_path, "sklearn") == (tmp_path / "model.pkl", "sklearn")
    with pytest.raises(ModelLoadError, match="unknown model format 'tensorflow'"):
        load_model(tmp_path, "m", "tensorflow")


@pytest.mark.parametrize(("file_name", "runtime", "extra"), [
    ("model.bst", "xgboost", "xgboost"), ("model.txt", "lightgbm", "lightgbm"),
    ("model.pt", "torch", "torch"), ("model.onnx", "onnxruntime", "onnx")])
def test_missing_runtime_names_the_extra(tmp_path: Path, file_name: str, runtime: str, extra: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, runtime, None)  # as if the runtime were not installed, installed or not
    (tmp_path / file_name).write_bytes(b"")
    with pytest.raises(ModelLoadError) as caught:
        load_model(tmp_path, "m")
    assert str(caught.value) == f"this model needs {runtime}, which is not installed: pip install 'flowdeck[{extra}]'"


def test_unloadable_pickle_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match="cannot load .*model.joblib"):
        load_model(tmp_path, "m")
