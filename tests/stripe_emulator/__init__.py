"""A stateful local Stripe API emulator for offline development and tests.

It speaks Stripe's v1 HTTP API closely enough for the real ``stripe`` SDK (API version
2026-10-28) to parse every response into its typed objects. See ``README.md`` in this folder.
"""

from .app import advance_clock, create_emulator_app
from .server import EmulatorHandle, run_emulator
from .state import EmulatorState
from .webhooks import sign_payload

__all__ = [
    "EmulatorHandle",
    "EmulatorState",
    "advance_clock",
    "create_emulator_app",
    "run_emulator",
    "sign_payload",
]
