"""`python -m vocoder_ext <command>`: see vocoder_ext/cli.py."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
