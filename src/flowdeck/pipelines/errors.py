"""Errors a user can act on: each carries one line that names the problem."""

from __future__ import annotations


class PipelineError(Exception):
    """The pipeline or its arguments are invalid; nothing was run."""


class TaskFailure(Exception):
    """A task could not run (bad inputs, missing artifact...); the task fails, the run goes on."""
