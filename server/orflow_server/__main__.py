"""`python -m orflow_server` is the `orflow` command."""

import sys

from .cli import main

sys.exit(main())
