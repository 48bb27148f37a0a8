import signal
import sys


def _early_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)  # SIGTERM/SIGINT while still importing PyAV: exit cleanly


signal.signal(signal.SIGTERM, _early_exit)
signal.signal(signal.SIGINT, _early_exit)

from .cli import main  # noqa: E402 - after the handlers on purpose

sys.exit(main())
