"""The ``ctc-chroma`` command line.

Each subcommand lives in ``ctc_chroma_lib/commands/<name>.py`` and provides
``add_parser(subparsers)`` (which sets ``func`` on its parser). Errors on bad input are
:class:`CTCChromaError`: printed as one line on stderr, exit code 2, no traceback.
"""
import argparse
import importlib
import os
import pkgutil
import sys

# TensorFlow's native log lines (start-up notes, graph-optimizer messages) are noise on a
# command line; real failures still raise. A value the user set is kept.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from . import __version__
from .errors import CTCChromaError

COMMAND_ORDER = ('chroma', 'train', 'evaluate', 'align', 'index', 'query')
"""Order of the subcommands in ``--help``; modules not listed here follow alphabetically."""


def command_names():
    """Names of the modules in ``ctc_chroma_lib.commands``, in the order shown in ``--help``."""
    from . import commands
    found = {m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith('_')}
    return [n for n in COMMAND_ORDER if n in found] + sorted(found - set(COMMAND_ORDER))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='ctc-chroma',
        description='Learned CTC chroma features and cross-modal theme retrieval '
                    '(Zalkow & Müller, ISMIR 2020).')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in command_names():
        importlib.import_module(f'ctc_chroma_lib.commands.{name}').add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CTCChromaError as e:
        print(f'ctc-chroma {args.command}: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'ctc-chroma {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
