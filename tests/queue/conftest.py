from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from qfakes import clock, directory, harness, qsettings  # noqa: F401  (fixtures)
