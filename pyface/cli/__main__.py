"""``python -m pyface.cli`` (the same as ``python -m pyface`` and ``pyface``)."""
import sys

from pyface.cli import main

sys.exit(main())
