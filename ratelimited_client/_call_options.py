"""Per-call settings: a call's own attempts, deadline, wait in the queue and priority, on a
client whose quota, budget and hooks stay shared (through request ``extensions``,
:func:`call_options`, or ``client.with_options(...)``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._errors import ConfigurationError
from ._retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CALL_EXTENSION", "CallOptions", "CallOptionsView", "call_options"]

#: The request extension that carries a call's :class:`CallOptions`.
CALL_EXTENSION: Final = "ratelimit_call"


def _positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class CallOptions:
    """One call's own settings; ``None`` keeps the client's.

    Attributes:
        attempts: attempts for this call, the first included (``1``: no retry);
            replaces the client's ``RetryPolicy.attempts``. The client's retry
            budget still applies.
        deadline: seconds for the whole call (queueing, every attempt, every
            backoff), replacing ``RetryPolicy.deadline``; past it the call raises
            ``DeadlineExceededError``.
        queue_wait: the longest an attempt may wait for a slot in the throttle;
            past it the attempt leaves the queue, having taken nothing, and the
            call raises ``DeadlineExceededError``.
        priority: the call's priority in its bucket's queue (higher goes sooner;
            the default 0), over a ``ratelimit_priority`` extension.

    Raises:
        ConfigurationError: a value that is not one, naming the field.

    .. versionadded:: 0.1
    """

    attempts: int | None = None
    deadline: float | None = None
    queue_wait: float | None = None
    priority: int | None = None

    def __post_init__(self) -> None:
        attempts: object = self.attempts
        if attempts is not None and (
            isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1
        ):
            raise ConfigurationError(f"attempts must be an integer >= 1, got {attempts!r}")
        if self.deadline is not None:
            _positive("deadline", self.deadline)
        if self.queue_wait is not None:
            _positive("queue_wait", self.queue_wait)
        level: object = self.priority
        if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
            raise ConfigurationError(f"priority must be an integer, got {level!r}")

    def updated(
        self,
        attempts: int | None,
        deadline: float | None,
        queue_wait: float | None,
        priority: int | None = None,
    ) -> CallOptions:
        """These options, with the ones given (not ``None``) replaced."""
        return CallOptions(
            attempts=self.attempts if attempts is None else attempts,
            deadline=self.deadline if deadline is None else deadline,
            queue_wait=self.queue_wait if queue_wait is None else queue_wait,
            priority=self.priority if priority is None else priority,
        )

    def policy(self, base: RetryPolicy | None) -> RetryPolicy | None:
        """The retry policy of a call with these options on a client with ``base``."""
        if self.attempts is None and self.deadline is None:
            return base
        changes: dict[str, Any] = {}
        if self.attempts is not None:
            changes["attempts"] = self.attempts
        if self.deadline is not None:
            changes["deadline"] = self.deadline
        return dataclasses.replace(base or RetryPolicy(attempts=1), **changes)


def call_options(
    *,
    attempts: int | None = None,
    deadline: float | None = None,
    queue_wait: float | None = None,
    priority: int | None = None,
) -> dict[str, CallOptions]:
    """``extensions=`` for one request with its own settings (see :class:`CallOptions`)::

    await client.get("/report", extensions=call_options(deadline=2.0, attempts=1))
    """
    options = CallOptions(
        attempts=attempts, deadline=deadline, queue_wait=queue_wait, priority=priority
    )
    return {CALL_EXTENSION: options}


class CallOptionsView:
    """The client's request methods with these options on every call: the same client
    (connections, quota, retry budget, hooks), as the vendor SDKs'
    ``client.with_options(...)``. Made by ``client.with_options(...)``; its methods
    return what the client's do (awaitables on an async client)."""

    __slots__ = ("_client", "_options")

    def __init__(self, client: Any, options: CallOptions) -> None:
        self._client = client
        self._options = options

    @property
    def call_options(self) -> CallOptions:
        """The options every call through this view carries."""
        return self._options

    def _extensions(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**(given or {}), CALL_EXTENSION: self._options}

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:
        kwargs["extensions"] = self._extensions(kwargs.get("extensions"))
        return self._client.request(method, url, **kwargs)

    def stream(self, method: str, url: Any, **kwargs: Any) -> Any:
        kwargs["extensions"] = self._extensions(kwargs.get("extensions"))
        return self._client.stream(method, url, **kwargs)

    def get(self, url: Any, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def head(self, url: Any, **kwargs: Any) -> Any:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: Any, **kwargs: Any) -> Any:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> Any:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: Any, **kwargs: Any) -> Any:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)

    def with_options(
        self,
        *,
        attempts: int | None = None,
        deadline: float | None = None,
        queue_wait: float | None = None,
        priority: int | None = None,
    ) -> CallOptionsView:
        """These options, with the ones given replaced."""
        options = self._options.updated(attempts, deadline, queue_wait, priority)
        return CallOptionsView(self._client, options)

    def __repr__(self) -> str:
        return f"<CallOptionsView {self._options} of {self._client!r}>"
