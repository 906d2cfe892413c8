"""Where limiter state lives: in memory (the default) or in Redis."""

from __future__ import annotations

from ._redis import OnUnavailable, RedisBackend, RemoteAdmission

__all__ = ["OnUnavailable", "RedisBackend", "RemoteAdmission"]
