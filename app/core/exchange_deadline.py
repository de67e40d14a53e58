"""An overall deadline for one blocking HTTP exchange over ``http.client`` (the remote backend's).

``http.client`` offers a socket timeout, which bounds each read, not the exchange: a server that sends a byte
now and then (a keep-alive comment, a stream that never ends) would keep a request open for ever. The rule
that ``timeout_s`` is a deadline for the whole request is ``app.core.openai_policy.EndpointSettings``'; this
is how the standard-library client keeps it. Standard library only.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading


class ExchangeDeadline:
    """The overall deadline of one HTTP exchange: at ``seconds`` after it starts, the exchange's socket is
    shut, which wakes a read blocked on it. A socket timeout alone bounds each read, not the exchange: a
    server that sends a byte now and then (a keep-alive comment, an endless stream) would never time out."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._over = False
        self._sock: socket.socket | None = None
        self.expired = False
        """The deadline passed before the exchange ended (whatever error the shut socket then caused)."""
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> ExchangeDeadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:  # a timer firing now finds the exchange over and leaves the kept-alive socket alone
            self._over = True

    def watch(self, conn: http.client.HTTPConnection) -> None:
        """Guard ``conn``'s socket, once connected (the connect has its own timeout). Taken now: for a reply
        that closes the connection, http.client hands the socket to the response and forgets it."""
        with self._lock:
            self._sock = conn.sock
        if self.expired:
            self._shut()

    def _expire(self) -> None:
        with self._lock:
            if self._over:
                return
            self.expired = True
        self._shut()

    def _shut(self) -> None:
        with self._lock:
            if self._sock is not None and not self._over:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
