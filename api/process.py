"""Process-level tuning for the long-running API processes."""

from __future__ import annotations

import gc

# A request leaves thousands of short-lived objects in reference cycles (sessions, futures,
# GraphQL execution state); with the default gen0 threshold of 700 the collector runs many
# times per request and each full pass rescans every long-lived object of the application.
GEN0_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Call once the application is built: what exists now lives as long as the process, so it
    is moved out of the collector's sight, and young collections run less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
