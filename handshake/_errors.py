"""Errors: each carries the TLS alert that was (or would be) sent for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._constants import AlertDescription

if TYPE_CHECKING:
    from ._events import Event

__all__ = ["CertificateError", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class. ``alert`` is the description of the fatal alert queued for the peer.

    When a connection raises one of these, the alert is already in
    ``data_to_send()`` and the connection is failed: every later call raises.
    """

    def __init__(self, message: str, alert: AlertDescription = AlertDescription.internal_error):
        super().__init__(message)
        self.alert = alert
        # Events completed by the same receive_data call before the failure
        # (say, the ClientHello of a handshake that then failed), so a caller
        # can still log what the peer offered.
        self.events: list[Event] = []

    def __str__(self) -> str:
        return f"{self.args[0]} (alert: {self.alert.name})"


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol or the API does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow.

    A fatal alert *from* the peer is not raised: it arrives as the events
    ``AlertReceived`` and ``ConnectionClosed(clean=False)``, and the
    connection is failed from then on.
    """


class CertificateError(RemoteProtocolError):
    """The server's certificate chain failed verification (client side).

    ``reason`` is one of ``"untrusted"``, ``"expired"``, ``"hostname"``, ``"invalid"``.
    """

    def __init__(self, message: str, reason: str, alert: AlertDescription):
        super().__init__(message, alert)
        self.reason = reason
