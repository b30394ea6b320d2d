"""Running a coroutine to completion on a given event loop from synchronous code (teardown)."""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def finish_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], timeout_s: float = 5.0) -> None:
    """Run `coro` on `loop`: waited for when the loop is idle or runs in another thread (Ray runs an
    async actor's loop in one), scheduled when called from the loop itself. Best effort: teardown
    must not raise."""
    if loop.is_closed():
        coro.close()
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if loop is running:
            loop.create_task(coro)
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=timeout_s)
        else:
            loop.run_until_complete(coro)
    except Exception:  # noqa: BLE001
        pass
