"""`python -m tinyvit` = the `tinyvit` command."""
import sys

from .cli import main

sys.exit(main())
