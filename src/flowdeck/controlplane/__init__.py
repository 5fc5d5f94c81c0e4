"""The control plane that `flowdeck up` starts: one process serving the HTTP APIs and the dashboard.

It holds the KFP v2beta1-compatible API (`kfp/`), the generic resource API, the dashboard pages, the
authentication hook, and runs the controllers (pipeline runs, schedules, resource kinds) as
background workers of the same process. Route handlers parse, call a service, and render; the work
itself lives in the capability packages.
"""
