"""The tour's load client: idle connections beside one busy one, against an echo server.

    python3 docs/tour/client.py PORT [--idle N] [--messages M] [--size BYTES] [--warmup W] [--rounds R]

It opens N idle connections and proves each one was accepted (one byte echoed), then sends M
messages of BYTES bytes on one more connection, one at a time, each waiting for its echo, and
checks every byte. With --rounds R the M messages are timed in R rounds and the fastest round
counts: on a shared machine, other work delays some rounds, and the least disturbed one is the
closest to the cost of the loop itself. The W warm-up messages before them are not timed.
It prints one JSON line: {"idle", "messages", "seconds", "usPerRoundTrip"}.
The idle connections stay open, silent, while the busy one runs: the server must watch them.
"""
import argparse
import json
import resource
import socket
import time


def recv_exactly(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise SystemExit("the server closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    idle = []
    # In batches, so the server's accept queue never overflows (an overflow costs a 1 s SYN retry).
    for start in range(0, args.idle, 200):
        batch = [socket.create_connection((args.host, args.port)) for _ in range(min(200, args.idle - start))]
        for sock in batch:
            sock.sendall(b"!")
        for sock in batch:
            if recv_exactly(sock, 1) != b"!":
                raise SystemExit("an idle connection got a wrong echo")
        idle.extend(batch)

    busy = socket.create_connection((args.host, args.port))
    busy.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def round_trips(first, count):
        started = time.perf_counter()
        for i in range(first, first + count):
            message = (b"%08d" % i) * (args.size // 8) + b"x" * (args.size % 8)
            busy.sendall(message)
            if recv_exactly(busy, len(message)) != message:
                raise SystemExit("message %d came back changed" % i)
        return time.perf_counter() - started

    round_trips(0, args.warmup)
    per_round = max(args.messages // args.rounds, 1)
    rounds = sorted(round_trips(args.warmup + r * per_round, per_round) for r in range(args.rounds))
    seconds = sum(rounds)
    fastest = rounds[0]
    busy.close()
    for sock in idle:
        sock.close()
    print(json.dumps({
        "idle": args.idle,
        "messages": args.messages,
        "seconds": seconds,
        "usPerRoundTrip": fastest / per_round * 1e6,
    }))


main()
