"""``python -m stylenorm.cli …`` = ``stylenorm …`` (torchrun runs the trainer this way)."""

import sys

from stylenorm.cli import main

sys.exit(main())
