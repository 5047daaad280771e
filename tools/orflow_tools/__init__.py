"""OR Flow's development and operations tools, beside the server rather than in it.

`orflow up` (the whole system in the foreground, `up.py`), `orflow bench` (`bench/`),
the embedded PostgreSQL and Redis for the no-setup run (`embedded.py`) and the test kit
shared by the tests, the bench and `up` (`testkit/`). A deployed server never imports
this package: it adds its commands to `orflow` through the `orflow.commands` entry points.
"""
