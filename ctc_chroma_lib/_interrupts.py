"""Ctrl-C for the ``ctc-chroma`` command: never lost, never a traceback.

Installed by the package's ``__init__`` as its very first statement when the program is the
``ctc-chroma`` console script (and by :mod:`ctc_chroma_lib.cli` when run with ``python -m``),
so that an interrupt while the command line is still loading is only counted; the command
then ends as interrupted as soon as :func:`ctc_chroma_lib.cli.main` starts. A program or a
test that imports the package keeps Python's own handler.
"""
import signal
import sys
import threading


class Interrupts:
    """Counts SIGINTs. While ``armed`` (inside ``main``) the handler raises
    ``KeyboardInterrupt`` as Python's own does; before, it only counts."""

    count = 0
    armed = False

    @classmethod
    def handler(cls, signum, frame):
        cls.count += 1
        if cls.armed:
            raise KeyboardInterrupt

    @classmethod
    def quiet_unraisable(cls, previous):
        """A ``sys.unraisablehook`` that drops the ``KeyboardInterrupt`` of :meth:`handler`
        where Python cannot raise it (in a ctypes callback, e.g. while numba compiles, or in
        a ``__del__``) and would print it with its traceback: it is counted, and ``main``
        ends as interrupted once the command returns. Anything else goes to ``previous``."""
        def hook(unraisable):
            if not (cls.armed and issubclass(unraisable.exc_type, KeyboardInterrupt)):
                previous(unraisable)
        return hook


def started_as_command() -> bool:
    """True when the running program is the ``ctc-chroma`` console script."""
    program = sys.argv[0] if sys.argv else ''
    return program.replace('\\', '/').rsplit('/', 1)[-1].startswith('ctc-chroma')


def install() -> None:
    """Make :meth:`Interrupts.handler` the SIGINT handler (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, Interrupts.handler)
