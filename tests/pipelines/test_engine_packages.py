"""Engine behaviour: `packages_to_install` already satisfied here runs in place, with no venv built."""

from kfp import dsl

IMAGE = "python:3.11"


@dsl.component(base_image=IMAGE, packages_to_install=["six"])
def uses_six() -> str:
    import six

    return six.__name__ + ":" + str(six.PY3)


@dsl.pipeline
def six_pipeline() -> str:
    return uses_six().output


@dsl.component(base_image=IMAGE, packages_to_install=["six>=1.0,<99"])
def uses_pinned_six() -> str:
    import six

    return six.__name__


@dsl.pipeline
def pinned_pipeline() -> str:
    return uses_pinned_six().output


def test_installed_package_runs_without_building_a_venv(run, settings) -> None:
    result = run(six_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "six:True"
    assert not settings.venv_cache_dir.exists() or not any(settings.venv_cache_dir.iterdir())


def test_satisfied_version_specifier_runs_without_building_a_venv(run, settings) -> None:
    result = run(pinned_pipeline)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert result["outputs"]["Output"] == "six"
    assert not settings.venv_cache_dir.exists() or not any(settings.venv_cache_dir.iterdir())


def test_no_install_message_for_satisfied_packages(settings) -> None:
    from flowdeck.pipelines.api import run_pipeline
    from flowdeck.pipelines.engine import Listener

    class Collector(Listener):
        def __init__(self) -> None:
            self.messages: list[str] = []

        def task_changed(self, node) -> None:
            pass

        def message(self, text: str) -> None:
            self.messages.append(text)

    listener = Collector()
    result = run_pipeline(six_pipeline, {}, settings=settings, listener=listener)

    assert result["state"] == "SUCCEEDED", result["error"]
    assert not [m for m in listener.messages if "install" in m], listener.messages
