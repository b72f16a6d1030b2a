"""Ctrl-C that is never lost, wherever the signal lands.

Python raises KeyboardInterrupt in whatever Python code runs when SIGINT arrives. Inside soundfile's virtual-io
read callbacks (cffi, run while a clip's bytes are decoded) that exception is printed as "Exception ignored from
cffi callback" and swallowed, and the run would go on. So, for the length of a run, SIGINT also records the request;
where raising would be swallowed it only records it, and the engine checks the record after each clip it prepares
and the runners after each batch (`stop_if_interrupted`), which raises the KeyboardInterrupt there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# soundfile's cffi callbacks for reading from a file object (bytes in memory): exceptions raised in them are lost
SWALLOWING_MODULE, SWALLOWING_PREFIX = "soundfile", "vio_"

_requested = False  # a Ctrl-C arrived during this run (set by the handler, which can only reach module state)


def in_swallowing_callback(frame: FrameType | None) -> bool:
    """Whether `frame`, or a frame that called it, is one of soundfile's virtual-io callbacks."""
    while frame is not None:
        if frame.f_globals.get("__name__") == SWALLOWING_MODULE and frame.f_code.co_name.startswith(SWALLOWING_PREFIX):
            return True
        frame = frame.f_back
    return False


def record_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """The run's SIGINT handler: record the request; raise KeyboardInterrupt as usual unless it would be swallowed."""
    global _requested
    _requested = True
    if not in_swallowing_callback(frame):
        raise KeyboardInterrupt


def stop_if_interrupted() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that was recorded but not raised (or whose raise was swallowed)."""
    if _requested:
        raise KeyboardInterrupt


@contextmanager
def ctrl_c_recorded() -> Iterator[None]:
    """Install `record_ctrl_c` for the block and restore the previous handler after. A SIGINT that the parent
    ignores (a background job) stays ignored; off the main thread, where Python cannot set handlers, nothing changes.
    DataLoader workers forked inside the block inherit the handler: they record, raise and exit, as torch expects."""
    global _requested
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield
        return
    _requested = False
    signal.signal(signal.SIGINT, record_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested = False
