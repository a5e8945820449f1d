"""handshake: a sans-IO TLS 1.2 implementation of the RSA key-transport handshake.

No sockets, no threads, no asyncio: feed bytes in, get events out, and send
what ``data_to_send()`` returns. The shape follows h11/h2::

    conn = ServerConnection(ServerConfig.from_pem_files("cert.pem", "key.pem"))
    events = conn.receive_data(bytes_from_peer)    # b"" means EOF
    sock.sendall(conn.data_to_send())
    conn.send_application_data(b"hello")           # after HandshakeComplete
    conn.close()                                   # queues close_notify

A client starts with ``ClientConnection(config).start_handshake()``.
On a fatal error the alert is queued in ``data_to_send()`` first, then a
``ProtocolError`` carrying it is raised; the connection stays failed.
"""

from ._client import ClientConnection
from ._config import ClientConfig, KeyLogSink, ServerConfig
from ._constants import AlertDescription, AlertLevel, CipherSuite
from ._errors import CertificateError, LocalProtocolError, ProtocolError, RemoteProtocolError
from ._events import (
    AlertReceived,
    ApplicationData,
    ClientFinished,
    ClientHello,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    HandshakeStep,
    ServerFinished,
    ServerHello,
)
from ._server import ServerConnection

__all__ = [
    "AlertDescription",
    "AlertLevel",
    "AlertReceived",
    "ApplicationData",
    "CertificateError",
    "CipherSuite",
    "ClientConfig",
    "ClientConnection",
    "ClientFinished",
    "ClientHello",
    "ConnectionClosed",
    "Event",
    "HandshakeComplete",
    "HandshakeStep",
    "KeyLogSink",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "ServerConfig",
    "ServerConnection",
    "ServerFinished",
    "ServerHello",
]
