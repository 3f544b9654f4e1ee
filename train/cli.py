"""What the training commands share at the command line: the usage error, flag checks, help, the exit status."""
import argparse
import sys

from vocoder_ext.checkpoint import CheckpointError

from .data import DataError


class UsageError(Exception):
    """A bad flag or input named in the message; reported without a traceback."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help states each default, except None: such a flag's help says where its value comes from."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def check_at_least(args, minimum, *flags):
    """Every named flag (argparse dest) that is set is >= minimum."""
    for flag in flags:
        value = getattr(args, flag)
        if value is not None and value < minimum:
            raise UsageError(f"--{flag} must be at least {minimum}, got {value}")


def main(prog, parser, run, argv=None):
    """Parse, run; a bad flag or input is one line on stderr and exit status 2, as argparse's own errors."""
    args = parser.parse_args(argv)
    try:
        run(args)
    except (UsageError, DataError, CheckpointError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return 0
