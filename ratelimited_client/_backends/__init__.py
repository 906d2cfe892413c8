"""Where limiter state lives: in memory (the default) or in Redis."""

from __future__ import annotations

from ._redis import OnUnavailable, Place, RedisBackend, RemoteAdmission, RemoteDecision

__all__ = ["OnUnavailable", "Place", "RedisBackend", "RemoteAdmission", "RemoteDecision"]
