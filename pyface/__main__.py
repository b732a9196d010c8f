"""``python -m pyface`` (also under ``torchrun -m pyface train ...``)."""
import sys

from pyface.cli import main

sys.exit(main())
