"""proxy: the asyncio HTTPS forward proxy on top of the ``handshake`` TLS library.

Modules: server (socket I/O), streams (TLS/plain byte streams), forward (HTTP
exchanges with h11), messages (target and header rules), pool (origin
keep-alive), traffic_log (the JSON Lines log), steps (the handshake in the
seed's terms), certs, client, origin, demo, cli.
"""
