"""`python -m orgsync`: the command line, as the `orgsync` script runs it."""

import sys

from orgsync.services.commands.cli import main

sys.exit(main())
