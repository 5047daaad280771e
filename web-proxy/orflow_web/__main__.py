"""`python -m orflow_web` is `orflow proxy`."""

import sys

from .cli import main

sys.exit(main())
