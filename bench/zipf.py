#!/usr/bin/env python3
"""bench/zipf.py: the Zipf load of the cache part of `make bench` (bench/cache.sh).

  zipf.py run PORT SEED [--requests N] [--keys K] [--s S] [--connections C]
                        [--max-seconds SEC] [--header NAME]
      Sends N GETs of /obj/<k> to 127.0.0.1:PORT, k drawn from Zipf(S) over 1..K with
      a generator seeded with SEED (the same sequence for every proxy), over C
      keep-alive connections with one request in flight each, from one thread (a
      selector loop: http.client in threads manages under 2,000 requests a second
      here). Each request takes the next key of the sequence, so the proxy sees it
      nearly in order. Stops sending after SEC seconds. Reads the cache's verdict
      from the response header NAME (Parapet: Cache-Status, nginx: X-Cache-Status)
      and prints one line:
        sent=... ok=... errors=... hits=... collapsed=... seconds=... rps=...
      (collapsed: waited for another request's origin fetch; Parapet only).

  zipf.py bound OBJECTS SEED[,SEED...] [--requests N] [--keys K] [--s S]
      The best a cache holding OBJECTS of the K objects can do: the top-OBJECTS
      hit ratio H(OBJECTS)/H(K) (generalised harmonic numbers of order S), so at
      least 1 - that share of requests miss in the long run; and the misses of
      Belady's offline optimum on the very sequences of those seeds, one after the
      other without emptying the cache (cold on the first). Prints
        static_hit=... static_miss=... belady_miss=<share per seed>,...
"""
import argparse
import heapq
import itertools
import random
import selectors
import socket
import sys
import time


def harmonic(n, s):
    return sum(i ** -s for i in range(1, n + 1))


def sequence(seed, n, keys, s):
    cum = list(itertools.accumulate(i ** -s for i in range(1, keys + 1)))
    return random.Random(seed).choices(range(1, keys + 1), cum_weights=cum, k=n)


def is_hit(value):
    tokens = [t.strip().lower() for t in value.split(";")]
    return "hit" in tokens


class Conn:
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = bytearray()
        self.head = None  # (status, verdict, close) once the head is read
        self.remaining = None  # body bytes left; None: chunked
        self.sent_at = 0.0

    def parse(self, header):
        """A complete response (status, verdict, close) if the buffer holds one."""
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[: end + 4]
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            self.head = (int(lines[0].split()[1]), fields.get(header, ""),
                         fields.get("connection", "").lower() == "close")
            if "content-length" in fields:
                self.remaining = int(fields["content-length"])
            elif "chunked" in fields.get("transfer-encoding", "").lower():
                self.remaining = None
            else:
                raise ValueError("response without a length")
        if self.remaining is not None:
            if len(self.buf) < self.remaining:
                return None
            del self.buf[: self.remaining]
        else:
            while True:  # chunks: size line, data, CRLF; a 0 chunk and CRLF end it
                eol = self.buf.find(b"\r\n")
                if eol < 0:
                    return None
                size = int(bytes(self.buf[:eol]).split(b";")[0], 16)
                if size == 0:
                    if self.buf.find(b"\r\n\r\n", eol) != eol:
                        return None
                    del self.buf[: eol + 4]
                    break
                if len(self.buf) < eol + 2 + size + 2:
                    return None
                del self.buf[: eol + 2 + size + 2]
        head, self.head = self.head, None
        return head


def run(args):
    keys = iter(sequence(args.seed, args.requests, args.keys, args.s))
    header = args.header.lower()
    counts = {"sent": 0, "ok": 0, "errors": 0, "hits": 0, "collapsed": 0}
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    deadline = start + args.max_seconds

    def send(conn):
        key = next(keys, None)
        if key is None or time.monotonic() > deadline:
            sel.unregister(conn.sock)
            conn.sock.close()
            return
        counts["sent"] += 1
        conn.sent_at = time.monotonic()
        try:
            conn.sock.sendall(f"GET /obj/{key} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        except OSError as err:
            counts["errors"] += 1
            print(f"zipf.py: {err}", file=sys.stderr)
            sel.unregister(conn.sock)
            conn.sock.close()
            fresh()

    def fresh():
        conn = Conn(args.port)
        sel.register(conn.sock, selectors.EVENT_READ, conn)
        send(conn)

    for _ in range(args.connections):
        fresh()
    while sel.get_map():
        events = sel.select(timeout=1)
        now = time.monotonic()
        if not events:
            for key in list(sel.get_map().values()):  # a stuck request: give up on it
                if now - key.data.sent_at > 10:
                    counts["errors"] += 1
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
            continue
        for key, _ in events:
            conn = key.data
            try:
                data = conn.sock.recv(262144)
                if not data:
                    raise ConnectionError("closed by the server")
                conn.buf += data
                done = conn.parse(header)
            except (OSError, ValueError) as err:
                counts["errors"] += 1
                print(f"zipf.py: {err}", file=sys.stderr)
                sel.unregister(conn.sock)
                conn.sock.close()
                if now < deadline:
                    fresh()
                continue
            if done is None:
                continue
            status, verdict, close = done
            if status != 200:
                counts["errors"] += 1
            else:
                counts["ok"] += 1
                if is_hit(verdict):
                    counts["hits"] += 1
                elif "collapsed" in verdict.lower():
                    counts["collapsed"] += 1
            if close:
                sel.unregister(conn.sock)
                conn.sock.close()
                fresh()
            else:
                send(conn)
    seconds = time.monotonic() - start
    print(" ".join(f"{k}={v}" for k, v in counts.items()),
          f"seconds={seconds:.1f} rps={counts['sent'] / seconds:.0f}")
    if counts["sent"] < args.requests:
        print(f"zipf.py: stopped after {args.max_seconds:g}s with {counts['sent']} of "
              f"{args.requests} requests sent", file=sys.stderr)


def belady_misses(seqs, capacity):
    """Misses per sequence of the offline optimum: on a miss with the cache full,
    evict the object whose next request is furthest away."""
    flat = [k for seq in seqs for k in seq]
    never = len(flat)
    next_use = [never] * len(flat)
    last = {}
    for i in range(len(flat) - 1, -1, -1):
        next_use[i] = last.get(flat[i], never)
        last[flat[i]] = i
    held = {}  # key -> its next use
    heap = []  # (-next use, key), stale entries skipped
    misses, ends = [], list(itertools.accumulate(len(s) for s in seqs))
    count, part = 0, 0
    for i, k in enumerate(flat):
        if k not in held:
            count += 1
            if len(held) >= capacity:
                while True:
                    nu, victim = heapq.heappop(heap)
                    if held.get(victim) == -nu:
                        del held[victim]
                        break
        held[k] = next_use[i]
        heapq.heappush(heap, (-next_use[i], k))
        if i + 1 == ends[part]:
            misses.append(count)
            count, part = 0, part + 1
    return misses


def bound(args):
    static_hit = harmonic(args.objects, args.s) / harmonic(args.keys, args.s)
    seqs = [sequence(int(seed), args.requests, args.keys, args.s)
            for seed in args.seeds.split(",")]
    misses = belady_misses(seqs, args.objects)
    print(f"static_hit={static_hit:.4f} static_miss={1 - static_hit:.4f} belady_miss="
          + ",".join(f"{m / len(s):.4f}" for m, s in zip(misses, seqs)))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("port", type=int)
    p_run.add_argument("seed", type=int)
    p_run.add_argument("--connections", type=int, default=16)
    p_run.add_argument("--max-seconds", type=float, default=60)
    p_run.add_argument("--header", default="Cache-Status")
    p_bound = sub.add_parser("bound")
    p_bound.add_argument("objects", type=int)
    p_bound.add_argument("seeds")
    for p in (p_run, p_bound):
        p.add_argument("--requests", type=int, default=50000)
        p.add_argument("--keys", type=int, default=10000)
        p.add_argument("--s", type=float, default=1.0)
    args = parser.parse_args()
    run(args) if args.command == "run" else bound(args)


if __name__ == "__main__":
    main()
