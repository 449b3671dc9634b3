"""The error pruning raises for bad requests (a selector that matches nothing, an impossible
density, a state file that belongs to another run). A ``UsageError``, so the CLI prints one line."""
from __future__ import annotations

from sim.errors import UsageError


class PruningError(UsageError):
    """A pruning request that cannot be carried out as given; the message names the fix."""
