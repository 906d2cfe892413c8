"""Where limiter state lives: in memory (the default) or in Redis."""

from __future__ import annotations

from ._redis import OnUnavailable, RedisBackend, RemoteAdmission, RemoteDecision

__all__ = ["OnUnavailable", "RedisBackend", "RemoteAdmission", "RemoteDecision"]
