#!/usr/bin/env python3
"""silent_clients.py PORT COUNT SOURCE: open COUNT connections to 127.0.0.1:PORT from
the loopback address SOURCE; half never send a byte, half send a request line and
stall. Prints "open N" once all are connected, then waits (at most 60 s) for the
server to close them and prints "closed N after S s"."""
import selectors
import socket
import sys
import time

port, count, source = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
sel = selectors.DefaultSelector()
socks = []
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    if i % 2:
        s.sendall(b"GET / HTTP/1.1\r\n")
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
start = time.time()
print(f"open {len(socks)}", flush=True)
closed = 0
while closed < count and time.time() < start + 60:
    for key, _ in sel.select(timeout=1):
        try:
            data = key.fileobj.recv(4096)
        except (BlockingIOError, ConnectionResetError):
            data = b""
        if not data:
            closed += 1
            sel.unregister(key.fileobj)
print(f"closed {closed} after {time.time() - start:.1f} s", flush=True)
time.sleep(120)
