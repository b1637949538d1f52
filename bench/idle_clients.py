#!/usr/bin/env python3
"""idle_clients.py PORT COUNT [SOURCE]: open COUNT connections to 127.0.0.1:PORT (from
the loopback address SOURCE, 127.0.0.1 unless given: one address has about 28,000
ephemeral ports), make one keep-alive GET on each, then hold them all open and idle.
Prints "ready N" once every connection has its answer, then sleeps until killed (at
most 120 s)."""
import selectors
import socket
import sys
import time

port, count = int(sys.argv[1]), int(sys.argv[2])
source = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
socks = []
sel = selectors.DefaultSelector()
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # The port is chosen at connect, for the whole 4-tuple: ports whose earlier
    # connections (to another proxy) wait in TIME-WAIT can be used again.
    s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(request)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
answered = 0
deadline = time.time() + 60
while answered < count and time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        try:
            data = key.fileobj.recv(4096)
        except BlockingIOError:
            continue
        if data:
            answered += 1
            sel.unregister(key.fileobj)
print(f"ready {answered}", flush=True)
time.sleep(120)
