"""`python -m vocoder_ext <command>`: see vocoder_ext/cli/main.py."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
