"""Leases: how replicas sharing a database know that work another one runs is still alive.

The replica running a response or a job records itself as its owner with a lease, renewed every :data:`RENEW`
seconds while the work runs. Past :data:`LEASE` seconds without renewal the owner is taken for dead and any replica
marks the work failed. The same upkeep passes on cancels asked through other replicas. Leases compare wall clocks
across machines: keep the replicas' clocks synchronised (NTP); a few seconds of skew only delays the verdict.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from localai.state.database import StoreUnavailable

log = logging.getLogger("localai.state")

LEASE = 15.0  # seconds a replica's claim on running work holds without renewal
RENEW = 3.0  # seconds between two renewals (and checks for cancels and lapsed leases)


async def keep(upkeep: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``upkeep`` every :data:`RENEW` seconds until cancelled; a database outage or a failure waits for the
    next round (the database says so itself; anything else is logged)."""
    while True:
        await asyncio.sleep(RENEW)
        try:
            await upkeep()
        except StoreUnavailable:
            pass
        except Exception:  # noqa: BLE001 - leases must keep being renewed
            log.exception("%s: lease upkeep failed", what)
