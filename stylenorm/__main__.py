"""``python -m stylenorm``: the ``stylenorm`` command."""

import sys

from stylenorm.cli import main

if __name__ == "__main__":
    sys.exit(main())
