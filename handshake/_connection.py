"""ServerConnection and ClientConnection: the public sans-IO connection objects.

(Skeleton: the implementation lands in the next commit; the signatures are final.)
"""

from __future__ import annotations

from ._config import ClientConfig, ServerConfig
from ._events import Event, HandshakeComplete

__all__ = ["ServerConnection", "ClientConnection"]


class _Connection:
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer (``b""`` = EOF); return the events they complete."""
        raise NotImplementedError

    def data_to_send(self) -> bytes:
        """Take the bytes queued for the peer (may be empty)."""
        raise NotImplementedError

    def send_application_data(self, data: bytes) -> None:
        """Queue application data, split into records of at most 16 KiB."""
        raise NotImplementedError

    def close(self) -> None:
        """Queue close_notify; no more data may be sent after it."""
        raise NotImplementedError

    @property
    def handshake_complete(self) -> bool:
        raise NotImplementedError

    @property
    def session(self) -> HandshakeComplete | None:
        """The negotiated facts once the handshake completed, else None."""
        raise NotImplementedError


class ServerConnection(_Connection):
    def __init__(self, config: ServerConfig) -> None:
        self.config = config


class ClientConnection(_Connection):
    def __init__(self, config: ClientConfig) -> None:
        self.config = config

    def start_handshake(self) -> list[Event]:
        """Queue the ClientHello; returns the ClientHello event."""
        raise NotImplementedError
