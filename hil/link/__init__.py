"""TCP link emulator for hardware-in-the-loop tests: bandwidth, latency, jitter, outages.

``python -m hil.link --listen 127.0.0.1:0 --target 127.0.0.1:1883 --profile satcom``,
``hil.link.main(argv)``, or in-process ``LinkEmulator(listen, target, Profile(...))``.
Uses only the standard library and PyYAML; see docs/link-emulator.md.
"""
from .cli import main
from .emulator import LinkEmulator
from .pipe import QUEUE_LIMIT, READ_CHUNK
from .profile import PROFILES, Profile, ProfileError
from .scenario import Scenario, ScenarioError, Step
from .scenario import load as load_scenario
from .scenario import play as play_scenario

__all__ = ["PROFILES", "QUEUE_LIMIT", "READ_CHUNK", "LinkEmulator", "Profile", "ProfileError", "Scenario",
           "ScenarioError", "Step", "load_scenario", "main", "play_scenario"]
