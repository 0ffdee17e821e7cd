"""Python 3.11's own asyncore running the same echo server, for comparison with the package.

    python3 -W ignore docs/tour/py_echo.py [--poll]

It prints "listening on 127.0.0.1:PORT" and serves until SIGTERM. With --poll the loop is
asyncore.loop(use_poll=True) (poll2), otherwise select, as in Python's default.
"""
import argparse
import asyncore
import signal
import socket
import sys


class EchoHandler(asyncore.dispatcher_with_send):
    def handle_read(self):
        data = self.recv(8192)
        if data:
            self.send(data)


class EchoServer(asyncore.dispatcher):
    def __init__(self):
        super().__init__()
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind(("127.0.0.1", 0))
        self.listen(1024)

    def handle_accepted(self, sock, addr):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        EchoHandler(sock)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--poll", action="store_true")
    args = parser.parse_args()
    server = EchoServer()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening on 127.0.0.1:%d" % server.socket.getsockname()[1], flush=True)
    asyncore.loop(timeout=30, use_poll=args.poll)


main()
