"""The `flowdeck` command line: parse arguments, call the Python API or the store, render the result.

Nothing here decides anything a user could not also do from Python; each command is a thin edge over
`flowdeck.pipelines.api` and `flowdeck.store`. Modules are imported lazily, command by command, so that
`flowdeck --help` never pays for kfp, SQLAlchemy or the engine.
"""
