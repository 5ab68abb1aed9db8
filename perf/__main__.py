"""`python -m perf run [SCENARIO...] [--quick] [--out DIR]` (see perf/suite)."""

import sys

from perf.suite.cli import main

sys.exit(main())
