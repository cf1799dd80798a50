"""The run folder ``runs/{swarm-id}/``: the artifact store and its schemas, the recorder that
turns engine events into contract files, run tracking, the shared index, command logs, and
reading runs back. Imports ``core`` and ``harnesses``.
"""
