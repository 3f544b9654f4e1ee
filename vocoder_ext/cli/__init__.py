"""The command line, `python -m vocoder_ext <command>` (main.py), and every tool only it uses. The
library never imports this package."""
from .main import build_parser, main

__all__ = ["main", "build_parser"]
