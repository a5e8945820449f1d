"""ServerConnection: the server's half of the RSA key-transport handshake."""

from __future__ import annotations

import functools
import os

from ._config import ServerConfig
from ._connection import Connection
from ._constants import (
    RANDOM_LEN,
    TLS12,
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    AlertDescription,
    CipherSuite,
    ExtensionType,
    HandshakeType,
)
from ._crypto import decrypt_pre_master_secret
from ._errors import RemoteProtocolError
from ._events import ClientFinished, ClientHello, Event, ServerFinished, ServerHello
from ._messages import (
    ServerHelloMessage,
    check_empty,
    check_signature_algorithms,
    decode_alpn,
    decode_client_hello,
    decode_client_key_exchange,
    decode_renegotiation_info,
    decode_server_name,
    decode_supported_versions,
    encode_alpn,
    encode_server_hello,
    frame,
)
from ._state import Role

__all__ = ["ServerConnection"]

_SERVER_HELLO_DONE = frame(HandshakeType.server_hello_done, b"")
# Plain ints: compared against every extension of every ClientHello.
_SERVER_NAME = int(ExtensionType.server_name)
_EXTENDED_MASTER_SECRET = int(ExtensionType.extended_master_secret)
_RENEGOTIATION_INFO = int(ExtensionType.renegotiation_info)
_ALPN = int(ExtensionType.application_layer_protocol_negotiation)
_SIGNATURE_ALGORITHMS = int(ExtensionType.signature_algorithms)
_SUPPORTED_VERSIONS = int(ExtensionType.supported_versions)


@functools.lru_cache(maxsize=64)
def _server_hello_around_random(suite: CipherSuite, secure_renegotiation: bool, ems: bool,
                                alpn: str | None) -> tuple[bytes, bytes]:
    """The encoded ServerHello before and after its random, which is all that varies
    between handshakes with the same choices; built once per combination."""
    extensions: list[tuple[int, bytes]] = []
    if secure_renegotiation:
        extensions.append((ExtensionType.renegotiation_info, b"\x00"))
    if ems:
        extensions.append((ExtensionType.extended_master_secret, b""))
    if alpn is not None:
        extensions.append((ExtensionType.application_layer_protocol_negotiation,
                           encode_alpn([alpn])))
    encoded = encode_server_hello(
        ServerHelloMessage(TLS12, bytes(RANDOM_LEN), b"", suite, 0, extensions))
    random_at = 4 + 2  # handshake header, server_version
    return encoded[:random_at], encoded[random_at + RANDOM_LEN:]


class ServerConnection(Connection):
    """The server side: waits for a ClientHello, answers with its certificate.

    Use ``receive_data`` / ``data_to_send`` in a loop; after the
    ``HandshakeComplete`` event, ``send_application_data`` and ``close``.
    """

    role = Role.SERVER
    peer_role = Role.CLIENT

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config.keylog)
        self.config = config
        self._client_version = b""
        self._server_name: str | None = None
        self._alpn: str | None = None
        self._encrypted_pms_len = 0

    def _on_handshake_message(self, msg_type: HandshakeType, body: bytes,
                              events: list[Event]) -> None:
        if msg_type is HandshakeType.client_hello:
            self._on_client_hello(body, events)
        elif msg_type is HandshakeType.client_key_exchange:
            self._on_client_key_exchange(body)
        else:  # Finished, already checked against the transcript
            self._on_client_finished(body, events)

    def _on_client_hello(self, body: bytes, events: list[Event]) -> None:
        hello = decode_client_hello(body)
        offered_versions: tuple[int, ...] = (hello.legacy_version,)
        listed_versions = False
        secure_renegotiation = TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites
        client_alpn: tuple[str, ...] = ()
        for ext_type, data in hello.extensions:
            if ext_type == _SERVER_NAME:
                self._server_name = decode_server_name(data)
            elif ext_type == _EXTENDED_MASTER_SECRET:
                check_empty(data, "extended_master_secret extension")
                self._ems = True
            elif ext_type == _RENEGOTIATION_INFO:
                # RFC 5746 §3.6: on an initial handshake it must be empty.
                if decode_renegotiation_info(data):
                    raise RemoteProtocolError("non-empty renegotiation_info on an initial handshake",
                                              AlertDescription.handshake_failure)
                secure_renegotiation = True
            elif ext_type == _ALPN:
                client_alpn = decode_alpn(data)
            elif ext_type == _SIGNATURE_ALGORITHMS:
                check_signature_algorithms(data)
            elif ext_type == _SUPPORTED_VERSIONS:
                # RFC 8446 §4.2.1: a TLS 1.3-capable client lists what it speaks here.
                offered_versions = decode_supported_versions(data)
                listed_versions = True
        self._client_random = hello.random
        self._client_version = hello.legacy_version.to_bytes(2, "big")
        # Reported before the server judges it, so a refused client's offer is
        # still visible (in the event list that the raised error carries).
        events.append(ClientHello(
            client_random=hello.random, legacy_version=hello.legacy_version,
            offered_versions=offered_versions, offered_cipher_suites=hello.cipher_suites,
            server_name=self._server_name, alpn_protocols=client_alpn,
            extended_master_secret=self._ems, secure_renegotiation=secure_renegotiation,
            extensions=tuple(t for t, _ in hello.extensions)))

        # With supported_versions, TLS 1.2 must be listed; without it, the
        # legacy version is the client's highest, and any from 1.2 up will do
        # (RFC 5246 Appendix E.1).
        if (TLS12 not in offered_versions if listed_versions
                else hello.legacy_version < TLS12):
            listed = ", ".join(f"0x{v:04x}" for v in offered_versions)
            raise RemoteProtocolError(f"client offers {listed}; only TLS 1.2 is supported",
                                      AlertDescription.protocol_version)
        suite = self._choose_suite(hello.cipher_suites)
        # RFC 5246 §7.4.1.2: the list must contain null compression.
        if 0 not in hello.compression_methods:
            raise RemoteProtocolError("ClientHello does not offer null compression",
                                      AlertDescription.decode_error)
        if self.config.require_extended_master_secret and not self._ems:
            raise RemoteProtocolError("client does not support the extended master secret, "
                                      "which this server requires", AlertDescription.handshake_failure)
        if client_alpn and self.config.alpn_protocols:
            # RFC 7301 §3.2: no protocol in common is fatal. A server configured with no
            # protocols does not take part in ALPN, and ignores the extension.
            chosen = [p for p in self.config.alpn_protocols if p in client_alpn]
            if not chosen:
                raise RemoteProtocolError(f"client offers ALPN {list(client_alpn)}, server speaks "
                                          f"{list(self.config.alpn_protocols)}",
                                          AlertDescription.no_application_protocol)
            self._alpn = chosen[0]
        self._suite = suite
        self._transcript.start_hashing(self._suite.hash_name)
        self._send_server_flight(suite, secure_renegotiation, events)

    def _choose_suite(self, offered: tuple[int, ...]) -> CipherSuite:
        for suite in self.config.cipher_suites:
            if suite in offered:
                return suite
        names = ", ".join(s.name for s in self.config.cipher_suites)
        raise RemoteProtocolError(f"no cipher suite in common; server supports {names}",
                                  AlertDescription.handshake_failure)

    def _send_server_flight(self, suite: CipherSuite, secure_renegotiation: bool,
                            events: list[Event]) -> None:
        self._server_random = os.urandom(RANDOM_LEN)
        before, after = _server_hello_around_random(suite, secure_renegotiation, self._ems,
                                                    self._alpn)
        flight = bytearray()
        self._send_handshake(HandshakeType.server_hello, before + self._server_random + after,
                             flight)
        self._send_handshake(HandshakeType.certificate, self.config._certificate_message,
                             flight)
        self._send_handshake(HandshakeType.server_hello_done, _SERVER_HELLO_DONE, flight)
        self._records.version_fixed = True
        self._flush_handshake(flight)
        subject, issuer, bits, fingerprint = self.config._leaf_summary
        events.append(ServerHello(
            server_random=self._server_random, version=TLS12, cipher_suite=suite,
            alpn_protocol=self._alpn, extended_master_secret=self._ems,
            certificate_subject=subject, certificate_issuer=issuer, certificate_key_bits=bits,
            certificate_chain_length=len(self.config._chain_der), certificate_sha256=fingerprint,
            certificate_verified=False))

    def _on_client_key_exchange(self, body: bytes) -> None:
        assert self._suite is not None
        encrypted = decode_client_key_exchange(body)
        self._encrypted_pms_len = len(encrypted)
        # Never an alert or an early exit here: a bad pre-master secret only
        # shows when the client's Finished fails to authenticate.
        pre_master_secret = decrypt_pre_master_secret(self.config.private_key, encrypted,
                                                      self._client_version)
        self._agree_keys(pre_master_secret)

    def _on_client_finished(self, verify_data: bytes, events: list[Event]) -> None:
        events.append(ClientFinished(encrypted_pre_master_secret_len=self._encrypted_pms_len,
                                     verify_data=verify_data))
        self._send_change_cipher_spec()
        events.append(ServerFinished(verify_data=self._send_finished()))
        self._complete(self._server_name, self._alpn, self._ems, self.config._leaf_summary[0],
                       events)
