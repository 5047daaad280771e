"""`orflow bench`: load OR Flow from several client processes and compare it with the database's own ceiling.

It lives inside the server package (not a top-level bench/) so that it ships
with the `orflow` command, is type-checked by the same mypy --strict run, and
can reuse the server's own settings, embedded services and migrations.
"""
