"""`orflow bench`: load OR Flow from several client processes and compare it with the database's own ceiling.

It lives in the tools package, beside the server rather than in it: a deployed
server does not carry it. `orflow bench` reaches it through the `orflow.commands`
entry point; it reuses the server's settings and migrations and the test kit's
fresh databases, child stacks and invariant checks.
"""
