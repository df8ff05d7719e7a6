"""``python -m netsim`` runs the command-line interface."""

import sys

from netsim.cli import main

sys.exit(main())
