"""`python -m generator` is the `connect-inject` command."""
import sys

from generator.cli import main

sys.exit(main())
