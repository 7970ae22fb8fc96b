"""Running a uvicorn server off the caller's event loop: its own thread, its own loop.

``exgate serve --sandbox`` serves the sandbox in-process; run as a task on the gateway's loop,
any slow sandbox handler (CPU work, a blocking call) would stall every gateway route with it.
:class:`ServerThread` gives the sandbox a thread and an event loop of its own, so the gateway's
loop only ever waits on sockets.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn


class ServerThread:
    """``server`` serving ``sockets`` in a daemon thread with its own asyncio loop.

    Args:
        server: the uvicorn server; it must not install signal handlers (they belong to the
            main thread's server), e.g. one whose ``capture_signals`` is a no-op.
        sockets: bound, listening sockets to serve (connections queue until the loop runs).
        name: the thread's name.

    Raises (from :meth:`wait_started`): ``RuntimeError`` when the server stops before it
    has started, ``TimeoutError`` when it has not started within the deadline.
    """

    def __init__(self, server: uvicorn.Server, sockets: list[socket.socket], name: str = "exgate-sandbox"):
        self.server = server
        self._sockets = sockets
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=self._sockets))
        except BaseException as exc:  # noqa: BLE001 - reported through wait_started / error
            self.error = exc

    def start(self) -> None:
        """Start the thread; the server then starts on its own loop."""
        self._thread.start()

    async def wait_started(self, timeout_s: float = 30.0) -> None:
        """Wait (without blocking the caller's loop) until the server accepts connections."""
        async with asyncio.timeout(timeout_s):
            while not self.server.started:
                if not self._thread.is_alive():
                    raise RuntimeError(f"{self._thread.name} stopped before it started: {self.error!r}")
                await asyncio.sleep(0.01)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread, at most ``timeout_s`` then forcing it.

        Blocks the calling thread (at most twice ``timeout_s``): meant for shutdown, after the
        caller's own server has stopped, and safe to call while the caller's task is cancelled.
        """
        self.server.should_exit = True
        if self._thread.ident is None:  # never started
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # open connections or handlers outliving the grace period
            self.server.force_exit = True
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        """Whether the server's thread is still running."""
        return self._thread.is_alive()
