"""The decrypted-traffic log: JSON Lines records, written off the forwarding path.

This format is a contract: `handshake-proxy log show|har|stats` reads it.

## Traffic log format (JSON Lines, one object per line, UTF-8, appended)

Two record types, distinguished by "type".

1. "connection" — one per TLS connection, written as soon as the handshake completes or fails:
{"type": "connection", "time": "2026-11-28T15:30:00.123456+00:00",   # ISO 8601 UTC, when the TCP connection was accepted
 "conn": "c000001",               # connection id, unique within one proxy run (prefix may include a run id)
 "client": "127.0.0.1:50412",
 "tls": {"version": "TLSv1.2", "cipher_suite": "TLS_RSA_WITH_AES_128_GCM_SHA256", "sni": "localhost" | null,
         "alpn": "http/1.1" | null, "extended_master_secret": true, "client_random": "<64 hex>",
         "server_random": "<64 hex>", "handshake_ms": 4.1} | null (handshake failed),
 "handshake": [ {"step": "Client Hello", "sender": "client", "messages": ["ClientHello"], "at_ms": 0.2,
                 "detail": {...what that message carried: offered suites names, sni, alpn, ems...}},
                {"step": "Server Hello + certificate", "sender": "server", "messages": ["ServerHello","Certificate","ServerHelloDone"], ...},
                {"step": "Client agrees", "sender": "client", "messages": ["ClientKeyExchange","ChangeCipherSpec","Finished"], ...},
                {"step": "Server agrees", "sender": "server", "messages": ["ChangeCipherSpec","Finished"], ...},
                {"step": "Encrypted communication", "sender": "both", "messages": ["application_data"], ...} ],
 "error": null | "handshake failed: <message> (alert: handshake_failure)"}

2. "exchange" — one per HTTP request/response (or CONNECT tunnel), written when the exchange ends:
{"type": "exchange", "time": "<ISO 8601 UTC, request start>", "conn": "c000001", "client": "127.0.0.1:50412",
 "seq": 1,                         # 1-based index of the exchange on its connection
 "tls": { same object as in the connection record },
 "request": {"method": "GET", "url": "http://127.0.0.1:8080/path?q=1", "version": "HTTP/1.1",
             "headers": [["Host", "127.0.0.1:8080"], ...],          # as received, Proxy-Authorization value -> "[redacted]"
             "body": {"size": 0, "sha256": "<hex of the whole body>", "preview": "...", "preview_encoding": "text" | "base64",
                      "truncated": false, "file": null | "<path of stored full body>"}},
 "response": {"status": 200, "reason": "OK", "version": "HTTP/1.1", "headers": [[...]], "body": {same shape}} | null,
 "tunnel": null | {"host": "example.com", "port": 443, "bytes_up": 123, "bytes_down": 456},   # CONNECT only
 "timings": {"total_ms": 12.3, "origin_connect_ms": 1.0 | null, "wait_ms": 3.0 | null, "receive_ms": 5.0 | null},
 "error": null | "origin refused the connection (127.0.0.1:9)" ...}
"""
