"""`python -m mlrm.dashboard --state var/demo/gateway.json --port 8765`: what `mlrm up` runs."""

import sys

from mlrm.dashboard.server import main

sys.exit(main())
