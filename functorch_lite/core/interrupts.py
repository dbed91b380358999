"""Ctrl-C without losing weights: :class:`InterruptGuard` defers ``SIGINT`` over a section.

While a guard is active in the main thread, the first Ctrl-C only sets ``guard.pending``; the
code inside decides where it is safe to stop (``fit`` after the current step, an optimizer after
every parameter got its new value, a loader after the whole tree is written) by calling
``guard.check()``, which raises ``KeyboardInterrupt`` there.  Leaving the section with an
interrupt pending raises it at the exit.  A second Ctrl-C raises at once (an escape hatch when a
step hangs; the section may then be cut short).

A guard installs its handler only in the main thread and only over Python's default handler:
nested guards are free (the outer one already defers), and a handler the user installed
(``signal.signal``) is left in charge.
"""
from __future__ import annotations

import signal
import sys
import threading

__all__ = ["InterruptGuard"]


class InterruptGuard:
    """Context manager deferring Ctrl-C (see the module docstring).

    ``message`` is printed (to stderr) at the first Ctrl-C, e.g. ``'stopping after the current
    step'``.
    """

    __slots__ = ("pending", "message", "_old")

    def __init__(self, message: str | None = None):
        self.pending = False
        self.message = message
        self._old = None

    def _handler(self, signum, frame):
        if self.pending:   # second Ctrl-C: the user insists
            raise KeyboardInterrupt
        self.pending = True
        if self.message:
            print(f"{self.message} (press Ctrl-C again to abort at once)", file=sys.stderr,
                  flush=True)

    def start(self) -> "InterruptGuard":
        """Begin deferring Ctrl-C (``with guard:`` calls it)."""
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def stop(self) -> None:
        """Put the previous handler back; a pending interrupt stays in ``pending``."""
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    __enter__ = start

    def check(self):
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the guard began."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is None:
            self.check()
        return False
