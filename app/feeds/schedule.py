"""``--every``: a sync as a long-lived process, stopped cleanly by SIGTERM or SIGINT.

A signal stops the run where it is, as Ctrl-C stops an import: files are written atomically and
each map is imported in a transaction of its own, so what was done stays done and the next run
resumes. Between runs the process sleeps; a failed run (the feed down) is reported and the next
one tried at its time.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TextIO

from app.feeds.run import SyncReport

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``1d`` or a number of seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not found or float(found[1]) <= 0:
        raise ValueError(f"{text!r} is not a duration: give e.g. 90s, 30m, 1h or 1d.")
    return float(found[1]) * _UNITS[found[2] or "s"]


def _stop_now(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    return handler


def run(
    once: Callable[[], SyncReport],
    every: float | None,
    stop: threading.Event,
    out: TextIO = sys.stdout,
) -> int:
    """Run ``once`` (then every ``every`` seconds until a signal); the exit status."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, _stop_now(stop))
    try:
        return _loop(once, every, stop, out)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _loop(
    once: Callable[[], SyncReport], every: float | None, stop: threading.Event, out: TextIO
) -> int:
    status = 0
    try:
        while True:
            report = once()
            print("\n".join(report.lines()), file=out, flush=True)
            interrupted = report.imported is not None and report.imported.interrupted
            if every is None:
                return 130 if interrupted else (0 if report.ok else 1)
            if interrupted or stop.wait(every):
                break
    except KeyboardInterrupt:
        status = 0 if every is not None else 130
    print(
        "stopped: what was downloaded and imported stays; the next run resumes",
        file=out,
        flush=True,
    )
    return status
