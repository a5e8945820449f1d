"""ClientConnection: the client's half — offer, verify the server, transport the secret."""

from __future__ import annotations

import os

from ._config import ClientConfig
from ._connection import Connection
from ._constants import (
    PRE_MASTER_SECRET_LEN,
    RANDOM_LEN,
    TLS12,
    AlertDescription,
    CipherSuite,
    ExtensionType,
    HandshakeType,
)
from ._crypto import (
    Certificate,
    RSAPublicKey,
    allows_key_encipherment,
    encrypt_pre_master_secret,
    load_der_certificate,
    load_der_leaf,
    rsa_public_key,
)
from ._errors import CertificateError, LocalProtocolError, RemoteProtocolError
from ._events import ClientFinished, ClientHello, Event, ServerFinished, ServerHello
from ._messages import (
    ClientHelloMessage,
    check_certificate_request,
    check_empty,
    decode_alpn,
    decode_certificate,
    decode_renegotiation_info,
    decode_server_hello,
    encode_alpn,
    encode_certificate,
    encode_client_hello,
    encode_client_key_exchange,
    encode_server_name,
)
from ._state import Role, State

__all__ = ["ClientConnection"]

# rsa_pkcs1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha384, rsa_pkcs1_sha512: sent because
# some servers expect the extension; RSA key transport never uses it.
_SIGNATURE_ALGORITHMS = bytes.fromhex("0008" "0401" "0804" "0501" "0601")
_EMPTY_CERTIFICATE = encode_certificate([])
_CERTIFICATE_ALERTS = {
    "untrusted": AlertDescription.certificate_unknown,
    "expired": AlertDescription.certificate_unknown,
    "hostname": AlertDescription.bad_certificate,
    "invalid": AlertDescription.bad_certificate,
}


class ClientConnection(Connection):
    """The client side: call ``start_handshake()``, then drive it like the server."""

    role = Role.CLIENT
    peer_role = Role.SERVER

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(config.keylog)
        self.config = config
        self._offered_extensions: set[int] = set()
        self._alpn: str | None = None
        self._chain: list[Certificate] = []
        self._server_key: RSAPublicKey | None = None  # the leaf's, once the chain is verified
        self._leaf_summary: tuple[str, str, int, bytes] = ("", "", 0, b"")
        self._certificate_requested = False

    def start_handshake(self) -> list[Event]:
        """Queue the ClientHello; return the ClientHello event."""
        if self._state is not State.AWAIT_CLIENT_HELLO:
            raise LocalProtocolError("the handshake was already started",
                                     AlertDescription.internal_error)
        config = self.config
        extensions: list[tuple[int, bytes]] = []
        server_name = None if config.server_name_is_ip else config.server_name
        if server_name is not None:
            extensions.append((ExtensionType.server_name, encode_server_name(server_name)))
        if config.extended_master_secret:
            extensions.append((ExtensionType.extended_master_secret, b""))
        extensions.append((ExtensionType.renegotiation_info, b"\x00"))
        extensions.append((ExtensionType.signature_algorithms, _SIGNATURE_ALGORITHMS))
        if config.alpn_protocols:
            extensions.append((ExtensionType.application_layer_protocol_negotiation,
                               encode_alpn(config.alpn_protocols)))
        self._offered_extensions = {t for t, _ in extensions}
        self._client_random = os.urandom(RANDOM_LEN)
        hello = ClientHelloMessage(TLS12, self._client_random, b"",
                                   tuple(int(s) for s in config.cipher_suites), b"\x00", extensions)
        flight = bytearray()
        self._send_handshake(HandshakeType.client_hello, encode_client_hello(hello), flight)
        self._flush_handshake(flight)
        return [ClientHello(
            client_random=self._client_random, legacy_version=TLS12, offered_versions=(TLS12,),
            offered_cipher_suites=hello.cipher_suites, server_name=server_name,
            alpn_protocols=tuple(config.alpn_protocols),
            extended_master_secret=config.extended_master_secret, secure_renegotiation=True,
            extensions=tuple(int(t) for t, _ in extensions))]

    def _on_handshake_message(self, msg_type: HandshakeType, body: bytes,
                              events: list[Event]) -> None:
        if msg_type is HandshakeType.server_hello:
            self._on_server_hello(body)
        elif msg_type is HandshakeType.certificate:
            self._on_certificate(body)
        elif msg_type is HandshakeType.server_hello_done:
            self._on_server_hello_done(body, events)
        elif msg_type is HandshakeType.certificate_request:
            # RFC 5246 §7.4.6: a client without a suitable certificate answers with an
            # empty Certificate and carries on; the server decides whether that will do.
            check_certificate_request(body)
            self._certificate_requested = True
        else:  # Finished, already checked against the transcript
            events.append(ServerFinished(verify_data=body))
            self._complete(None if self.config.server_name_is_ip else self.config.server_name,
                           self._alpn, self._ems, self._leaf_summary[0], events)

    def _on_server_hello(self, body: bytes) -> None:
        hello = decode_server_hello(body)
        if hello.version != TLS12:
            raise RemoteProtocolError(f"server chose version 0x{hello.version:04x}, not TLS 1.2",
                                      AlertDescription.protocol_version)
        if hello.cipher_suite not in self.config.cipher_suites:
            raise RemoteProtocolError(f"server chose cipher suite 0x{hello.cipher_suite:04x}, "
                                      "which we did not offer", AlertDescription.illegal_parameter)
        if hello.compression_method != 0:
            raise RemoteProtocolError("server chose a compression method",
                                      AlertDescription.illegal_parameter)
        for ext_type, data in hello.extensions:
            # RFC 5246 §7.4.1.4: a server must not send an extension we did not offer.
            if ext_type not in self._offered_extensions:
                raise RemoteProtocolError(f"server sent extension {ext_type} we did not offer",
                                          AlertDescription.unsupported_extension)
            if ext_type == ExtensionType.renegotiation_info:
                if decode_renegotiation_info(data):
                    raise RemoteProtocolError("non-empty renegotiation_info on an initial handshake",
                                              AlertDescription.handshake_failure)
            elif ext_type == ExtensionType.extended_master_secret:
                check_empty(data, "extended_master_secret extension")
                self._ems = True
            elif ext_type == ExtensionType.application_layer_protocol_negotiation:
                chosen = decode_alpn(data)
                if len(chosen) != 1 or chosen[0] not in self.config.alpn_protocols:
                    raise RemoteProtocolError(f"server chose ALPN {list(chosen)}, not one we offered",
                                              AlertDescription.illegal_parameter)
                self._alpn = chosen[0]
            elif ext_type == ExtensionType.server_name:
                check_empty(data, "server_name extension")
        self._suite = CipherSuite(hello.cipher_suite)
        self._transcript.start_hashing(self._suite.hash_name)
        self._server_random = hello.random
        self._records.version_fixed = True

    def _on_certificate(self, body: bytes) -> None:
        chain_der = decode_certificate(body)
        if not chain_der:
            raise RemoteProtocolError("server sent no certificate",
                                      AlertDescription.handshake_failure)
        try:
            leaf, leaf_summary = load_der_leaf(chain_der[0])
            self._chain = [leaf, *(load_der_certificate(der) for der in chain_der[1:])]
            public_key = rsa_public_key(leaf)
        except ValueError as exc:
            raise CertificateError(f"server certificate cannot be parsed: {exc}", "invalid",
                                   AlertDescription.bad_certificate) from None
        if public_key is None:
            raise CertificateError("server certificate has no RSA key, which RSA key transport "
                                   "needs", "invalid", AlertDescription.unsupported_certificate)
        if not allows_key_encipherment(self._chain[0]):
            # The pre-master secret would be encrypted to a key its owner did not allow for it.
            raise CertificateError("server certificate's key usage does not allow "
                                   "keyEncipherment, which RSA key transport needs", "invalid",
                                   AlertDescription.unsupported_certificate)
        reason, message = self.config._verifier.verify(self._chain)
        if reason != "ok":
            raise CertificateError(f"certificate verify failed: {message}", reason,
                                   _CERTIFICATE_ALERTS[reason])
        self._leaf_summary = leaf_summary
        self._server_key = public_key

    def _on_server_hello_done(self, body: bytes, events: list[Event]) -> None:
        check_empty(body, "ServerHelloDone")
        assert self._suite is not None
        subject, issuer, bits, fingerprint = self._leaf_summary
        events.append(ServerHello(
            server_random=self._server_random, version=TLS12, cipher_suite=self._suite,
            alpn_protocol=self._alpn, extended_master_secret=self._ems,
            certificate_subject=subject, certificate_issuer=issuer, certificate_key_bits=bits,
            certificate_chain_length=len(self._chain), certificate_sha256=fingerprint,
            certificate_verified=True))
        # RFC 5246 §7.4.7.1: client_version (what we offered) then 46 random bytes.
        pre_master_secret = TLS12.to_bytes(2, "big") + os.urandom(PRE_MASTER_SECRET_LEN - 2)
        assert self._server_key is not None
        encrypted = encrypt_pre_master_secret(self._server_key, pre_master_secret)
        flight = bytearray()
        if self._certificate_requested:
            self._send_handshake(HandshakeType.certificate, _EMPTY_CERTIFICATE, flight)
        self._send_handshake(HandshakeType.client_key_exchange,
                             encode_client_key_exchange(encrypted), flight)
        self._flush_handshake(flight)
        self._agree_keys(pre_master_secret)
        self._send_change_cipher_spec()
        verify_data = self._send_finished()
        events.append(ClientFinished(encrypted_pre_master_secret_len=len(encrypted),
                                     verify_data=verify_data))
