"""The ``ctc-chroma`` command line.

Each subcommand lives in ``ctc_chroma_lib/commands/<name>.py`` and provides
``add_parser(subparsers)`` (which sets ``func`` on its parser). Errors on bad input are
:class:`CTCChromaError`: printed as one line on stderr (and, under ``--json``, as
``{"error": ...}`` on stdout), exit code 2, no traceback. An interrupt (Ctrl-C) at any moment
ends with "interrupted" and exit code 130, even where a library swallowed it.
"""
import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading

# TensorFlow's native log lines (start-up notes, graph-optimizer messages) are noise on a
# command line; real failures still raise. A value the user set is kept.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from . import __version__
from ._interrupts import Interrupts, install
from .errors import CTCChromaError, printable

if __name__ == '__main__':  # python -m ctc_chroma_lib.cli (the console script installs earlier)
    install()

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


def _fail(args, message: str) -> None:
    """One line on stderr; under ``--json`` (to stdout) also ``{"error": ...}`` on stdout."""
    if getattr(args, 'json', None) is True:
        import json
        print(json.dumps({'error': message}))
    command = getattr(args, 'command', None)
    prog = f'ctc-chroma {command}' if command else 'ctc-chroma'
    print(f'{prog}: error: {printable(message)}', file=sys.stderr)


def main(argv=None) -> int:
    """Run the command line; return the exit status (0 ok, 1 check failed, 2 bad input,
    130 interrupted)."""
    args = None
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, Interrupts.handler)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = Interrupts.quiet_unraisable(previous_hook)
    Interrupts.armed = True
    try:
        if Interrupts.count:  # while the command line was loading
            raise KeyboardInterrupt
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, 'func', None):
            parser.print_help()
            return 0
        status = int(args.func(args) or 0)
        if Interrupts.count:  # an interrupt that some library caught and ignored
            raise KeyboardInterrupt
        return status
    except CTCChromaError as e:
        _fail(args, str(e))
        return 2
    except KeyboardInterrupt:
        _fail(args, 'interrupted')
        return 130
    finally:
        Interrupts.armed, Interrupts.count = False, 0
        sys.unraisablehook = previous_hook
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def command(argv=None) -> int:
    """The ``ctc-chroma`` program: :func:`main`, then Ctrl-C ignored while Python shuts down.

    Python's shutdown puts back the system's default for every signal that has a handler
    written in Python; a Ctrl-C after that, while the interpreter is still unloading its
    modules, would end the finished command by the signal (exit status -2 to its caller)
    instead of its own status. Once ``main`` has returned the work is done and the index
    consistent, so the rest of the exit ignores the interrupt.
    """
    try:
        return main(argv)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == '__main__':
    sys.exit(command())
