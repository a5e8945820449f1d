"""The handshake in the seed's terms: log details, the TLS facts, and the client's ladder.

The same descriptions serve the proxy's connection records and the
client's ``--trace``, so both tell the story in the same words.
"""

from __future__ import annotations

import functools
from typing import Any

from handshake import (
    CipherSuite,
    ClientFinished,
    ClientHello,
    Event,
    HandshakeComplete,
    ServerFinished,
    ServerHello,
)

__all__ = ["step_record", "step_lines", "tls_record", "ladder_row", "suite_name", "version_name",
           "ENCRYPTED_STEP"]

VERSION_NAMES = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
                 0x0304: "TLSv1.3"}
ENCRYPTED_STEP = "Encrypted communication"


def version_name(v: int) -> str:
    return VERSION_NAMES.get(v, f"0x{v:04x}")


# A dict, not CipherSuite(code): clients offer dozens of suites we do not know, and
# an Enum lookup that fails raises, which is slow on the per-connection path.
_SUITE_NAMES = {int(s): s.name for s in CipherSuite}


def suite_name(code: int) -> str:
    name = _SUITE_NAMES.get(code)
    return name if name is not None else f"0x{code:04x}"


@functools.lru_cache(maxsize=256)
def _offer_names(codes: tuple[int, ...]) -> tuple[str, ...]:
    # A client program offers the same dozens of suites on every connection;
    # naming them once per distinct offer keeps that off the per-connection path.
    return tuple(suite_name(code) for code in codes)


def _bulk_cipher(suite: int) -> str:
    name = suite_name(suite)
    return "AES-256-GCM" if "AES_256" in name else "AES-128-GCM" if "AES_128" in name else name


def step_detail(ev: Event) -> dict[str, Any]:
    """What one handshake message group carried, as JSON-ready values."""
    if isinstance(ev, ClientHello):
        return {"versions": [version_name(v) for v in ev.offered_versions],
                "cipher_suites": list(_offer_names(ev.offered_cipher_suites)),
                "sni": ev.server_name, "alpn": list(ev.alpn_protocols),
                "extended_master_secret": ev.extended_master_secret,
                "secure_renegotiation": ev.secure_renegotiation,
                "client_random": ev.client_random.hex()}
    if isinstance(ev, ServerHello):
        return {"version": version_name(ev.version), "cipher_suite": suite_name(ev.cipher_suite),
                "alpn": ev.alpn_protocol, "extended_master_secret": ev.extended_master_secret,
                "server_random": ev.server_random.hex(),
                "certificate": {"subject": ev.certificate_subject,
                                "issuer": ev.certificate_issuer,
                                "key": f"RSA-{ev.certificate_key_bits}",
                                "chain_length": ev.certificate_chain_length,
                                "sha256": ev.certificate_sha256.hex()}}
    if isinstance(ev, ClientFinished):
        return {"encrypted_pre_master_secret_bytes": ev.encrypted_pre_master_secret_len,
                "verify_data": ev.verify_data.hex()}
    if isinstance(ev, ServerFinished):
        return {"verify_data": ev.verify_data.hex()}
    if isinstance(ev, HandshakeComplete):
        return {"cipher": _bulk_cipher(ev.cipher_suite),
                "keys": "one-time session keys derived from the master secret"}
    return {}


def step_record(ev: Event, at_ms: float) -> dict[str, Any]:
    """One entry of a connection record's "handshake" list."""
    if isinstance(ev, HandshakeComplete):
        step, sender, messages = ENCRYPTED_STEP, "both", ["application_data"]
    else:
        step = ev.seed_step  # type: ignore[attr-defined]
        sender = ev.sender  # type: ignore[attr-defined]
        messages = list(ev.tls_messages)  # type: ignore[attr-defined]
    return {"step": step, "sender": sender, "messages": messages, "at_ms": round(at_ms, 3),
            "detail": step_detail(ev)}


def tls_record(session: HandshakeComplete, handshake_ms: float) -> dict[str, Any]:
    """The "tls" object shared by a connection's records."""
    return {"version": version_name(session.version),
            "cipher_suite": suite_name(session.cipher_suite),
            "sni": session.server_name, "alpn": session.alpn_protocol,
            "extended_master_secret": session.extended_master_secret,
            "client_random": session.client_random.hex(),
            "server_random": session.server_random.hex(),
            "handshake_ms": round(handshake_ms, 3)}


def step_lines(ev: Event) -> list[str]:
    """A person's reading of what one step carried (for the ladder)."""
    if isinstance(ev, ClientHello):
        return [f"offers {', '.join(version_name(v) for v in ev.offered_versions)}",
                "cipher suites: " + ", ".join(_offer_names(ev.offered_cipher_suites)),
                f"SNI {ev.server_name or '(none)'}; ALPN {', '.join(ev.alpn_protocols) or '(none)'};"
                f" extended master secret {'yes' if ev.extended_master_secret else 'no'}",
                f"client_random {ev.client_random.hex()}"]
    if isinstance(ev, ServerHello):
        verified = ("chain and name verified by the client" if ev.certificate_verified
                    else "not verified here")
        return [f"chooses {version_name(ev.version)}, {suite_name(ev.cipher_suite)}"
                f"{', ALPN ' + ev.alpn_protocol if ev.alpn_protocol else ''}",
                f"certificate: {ev.certificate_subject} (RSA-{ev.certificate_key_bits} public key)",
                f"issued by {ev.certificate_issuer}; chain of {ev.certificate_chain_length}; "
                f"{verified}",
                f"server_random {ev.server_random.hex()}"]
    if isinstance(ev, ClientFinished):
        return ["client trusts the CA; pre-master secret (48 bytes) encrypted with the "
                f"server's RSA public key ({ev.encrypted_pre_master_secret_len} bytes)",
                f"Finished verify_data (the MAC over the handshake) {ev.verify_data.hex()}"]
    if isinstance(ev, ServerFinished):
        return ["server decrypted the pre-master secret, derived the same keys, checked the "
                "client's MAC",
                f"Finished verify_data {ev.verify_data.hex()}"]
    if isinstance(ev, HandshakeComplete):
        return [f"application_data records sealed with {_bulk_cipher(ev.cipher_suite)} under "
                "one-time session keys derived from the master secret"]
    return []


def ladder_row(index: int, ev: Event, left: str = "client", right: str = "proxy") -> str:
    """One step drawn as an arrow between the two parties, then what it carried."""
    width = 64
    if isinstance(ev, HandshakeComplete):
        label = f" {index}. {ENCRYPTED_STEP} "
        arrow = "<" + label.center(width - 2, "=") + ">"
        tls = "application_data"
    else:
        label = f" {index}. {ev.seed_step} "  # type: ignore[attr-defined]
        tls = ", ".join(ev.tls_messages)  # type: ignore[attr-defined]
        body = label.center(width - 1, "-")
        arrow = body + ">" if ev.sender == "client" else "<" + body  # type: ignore[attr-defined]
    lines = [f"{left:>8} |{arrow}| {right}", f"{'':>8} |   TLS 1.2: {tls}"]
    lines += [f"{'':>8} |     {line}" for line in step_lines(ev)]
    return "\n".join(lines)
