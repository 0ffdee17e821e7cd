"""Python 3.11 asyncore echo server: the classic EchoHandler / EchoServer of the asyncore docs.

    python3 -W ignore bench/peers/py-echo.py [--host 127.0.0.1] [--port 0] [--backend select|poll]

select runs asyncore.loop(use_poll=False), poll runs asyncore.loop(use_poll=True).
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

    def handle_close(self):
        self.close()


class EchoServer(asyncore.dispatcher):
    def __init__(self, host, port):
        super().__init__()
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind((host, port))
        self.listen(1024)

    def handle_accepted(self, sock, addr):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        EchoHandler(sock)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backend", choices=["select", "poll"], default="select")
    args = parser.parse_args()
    server = EchoServer(args.host, args.port)
    host, port = server.socket.getsockname()[:2]
    print(f"listening on {host}:{port} (backend {args.backend}, mode python)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncore.loop(timeout=30, use_poll=args.backend == "poll")


if __name__ == "__main__":
    main()
