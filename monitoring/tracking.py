"""``monitoring.track("rag.retrieve")``: times a block or a function (sync or async).

    with monitoring.track("rag.retrieve"):
        ...

    @monitoring.track("llm.call")
    async def call_model(...): ...

The duration goes into the operation's histogram for the current minute; an exception marks the
observation as an error and propagates unchanged.
"""

from __future__ import annotations

import functools
import inspect
import time

MAX_OPERATION_LENGTH = 200


def _recorder():
    # Imported on first use: this module is imported with the package, before the app registry.
    from monitoring.recorder import recorder

    return recorder


class track:  # lower case: reads as a function at call sites, like contextlib helpers
    __slots__ = ("_started", "operation")

    def __init__(self, operation: str):
        if not isinstance(operation, str) or not operation.strip() or len(operation) > MAX_OPERATION_LENGTH:
            raise ValueError(f"operation must be 1-{MAX_OPERATION_LENGTH} characters")
        if "|" in operation or "\t" in operation:
            raise ValueError("operation must not contain '|' or tabs")
        self.operation = operation
        self._started = 0.0

    def __enter__(self) -> track:
        self._started = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        elapsed_ms = (time.perf_counter() - self._started) * 1000
        _recorder().observe(self.operation, elapsed_ms, success=exc_type is None)
        return False

    async def __aenter__(self) -> track:
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def __call__(self, function):
        operation = self.operation
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args, **kwargs):
                async with track(operation):
                    return await function(*args, **kwargs)

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with track(operation):
                return function(*args, **kwargs)

        return wrapper
