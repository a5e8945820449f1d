"""The handshake state machine as data.

Both roles walk the same table: for each state, the messages that may come
next, who sends each and where it leads (after the server's Certificate,
either a CertificateRequest or the ServerHelloDone). A connection applies it
to what it sends and to what it receives, so the table does not know which
role it serves; a received message with no entry is an ``unexpected_message``
naming message, role and state (RFC 5246 §7.3, the full handshake). Client
certificates are not part of the profile: a server's CertificateRequest is
answered with an empty Certificate (§7.4.6), and our server never asks.
"""

from __future__ import annotations

import enum

from ._constants import AlertDescription, HandshakeType
from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = ["CHANGE_CIPHER_SPEC", "Role", "State", "next_state"]


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    AWAIT_CLIENT_HELLO = "await ClientHello"
    AWAIT_SERVER_HELLO = "await ServerHello"
    AWAIT_CERTIFICATE = "await Certificate"
    AWAIT_SERVER_HELLO_DONE = "await ServerHelloDone"
    AWAIT_SERVER_HELLO_DONE_AFTER_REQUEST = "await ServerHelloDone (certificate requested)"
    AWAIT_CLIENT_CERTIFICATE = "await client Certificate"
    AWAIT_CLIENT_KEY_EXCHANGE = "await ClientKeyExchange"
    AWAIT_CLIENT_CHANGE_CIPHER_SPEC = "await client ChangeCipherSpec"
    AWAIT_CLIENT_FINISHED = "await client Finished"
    AWAIT_SERVER_CHANGE_CIPHER_SPEC = "await server ChangeCipherSpec"
    AWAIT_SERVER_FINISHED = "await server Finished"
    ESTABLISHED = "established"
    CLOSED = "closed"
    FAILED = "failed"

    # Members are singletons, so identity hashing is exact; Enum's own
    # __hash__ is Python code, run on every table lookup of every handshake.
    __hash__ = object.__hash__


# ChangeCipherSpec is its own content type, not a handshake message, but it
# has a fixed place in the flight, so the table treats it as one.
CHANGE_CIPHER_SPEC = "ChangeCipherSpec"
Message = HandshakeType | str

# (state, message) -> (who sends it, the state after it).
_TRANSITIONS: dict[tuple[State, Message], tuple[Role, State]] = {
    (State.AWAIT_CLIENT_HELLO, HandshakeType.client_hello): (Role.CLIENT, State.AWAIT_SERVER_HELLO),
    (State.AWAIT_SERVER_HELLO, HandshakeType.server_hello): (Role.SERVER, State.AWAIT_CERTIFICATE),
    (State.AWAIT_CERTIFICATE, HandshakeType.certificate): (Role.SERVER,
                                                          State.AWAIT_SERVER_HELLO_DONE),
    (State.AWAIT_SERVER_HELLO_DONE, HandshakeType.server_hello_done): (
        Role.SERVER, State.AWAIT_CLIENT_KEY_EXCHANGE),
    (State.AWAIT_SERVER_HELLO_DONE, HandshakeType.certificate_request): (
        Role.SERVER, State.AWAIT_SERVER_HELLO_DONE_AFTER_REQUEST),
    (State.AWAIT_SERVER_HELLO_DONE_AFTER_REQUEST, HandshakeType.server_hello_done): (
        Role.SERVER, State.AWAIT_CLIENT_CERTIFICATE),
    (State.AWAIT_CLIENT_CERTIFICATE, HandshakeType.certificate): (
        Role.CLIENT, State.AWAIT_CLIENT_KEY_EXCHANGE),
    (State.AWAIT_CLIENT_KEY_EXCHANGE, HandshakeType.client_key_exchange): (
        Role.CLIENT, State.AWAIT_CLIENT_CHANGE_CIPHER_SPEC),
    (State.AWAIT_CLIENT_CHANGE_CIPHER_SPEC, CHANGE_CIPHER_SPEC): (Role.CLIENT,
                                                                  State.AWAIT_CLIENT_FINISHED),
    (State.AWAIT_CLIENT_FINISHED, HandshakeType.finished): (
        Role.CLIENT, State.AWAIT_SERVER_CHANGE_CIPHER_SPEC),
    (State.AWAIT_SERVER_CHANGE_CIPHER_SPEC, CHANGE_CIPHER_SPEC): (Role.SERVER,
                                                                  State.AWAIT_SERVER_FINISHED),
    (State.AWAIT_SERVER_FINISHED, HandshakeType.finished): (Role.SERVER, State.ESTABLISHED),
}


def _name(message: Message) -> str:
    return message if isinstance(message, str) else message.name


def next_state(state: State, sender: Role, message: Message, *, local_role: Role) -> State:
    """The state after ``sender`` sends ``message``; raise if the table has no such move."""
    entry = _TRANSITIONS.get((state, message))
    if entry is not None and entry[0] is sender:
        return entry[1]
    text = (f"{_name(message)} from the {sender.value} in state '{state.value}' "
            f"(we are the {local_role.value})")
    if sender is local_role:
        raise LocalProtocolError(f"cannot send {text}", AlertDescription.internal_error)
    raise RemoteProtocolError(f"unexpected {text}", AlertDescription.unexpected_message)
