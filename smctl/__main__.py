"""`python -m smctl` runs the command line."""

import sys

from smctl.app import main

sys.exit(main())
