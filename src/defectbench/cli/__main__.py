"""``python -m defectbench.cli``: the same as the ``defectbench`` command."""

import sys

from defectbench.cli import main

sys.exit(main())
