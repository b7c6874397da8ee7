"""``python -m sketchode``: the command line (:mod:`sketchode.cli.main`)."""

import sys

from sketchode.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
