"""`python -m na_toolkit ...`: the same as the `na-toolkit` command."""

import sys

from .cli.main import main

sys.exit(main())
