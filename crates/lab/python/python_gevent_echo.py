#!/usr/bin/env python3
# coding=utf-8
"""gevent TCP echo server, as the course writes it ("gevent版-TCP服务器"):
monkey.patch_all() makes the socket module cooperative, and every accepted client gets
a greenlet (gevent.spawn) doing recv(1024) / send; a greenlet blocked on I/O switches
to the others.

Lab model `python-gevent`; gevent is not in the standard library. When it is missing
this prints "missing module: gevent" (the lab turns that into install instructions)
and exits with status 3. Changes from the course version: sendall instead of send (a
send may take only part of the data), no print per message, flags and the "listening
on" line.
"""
import argparse
import sys

try:
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from gevent import socket
except ImportError:
    print("missing module: gevent", flush=True)
    sys.exit(3)


def handle_request(conn):
    try:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()


def server(host, port, backlog):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    print("listening on %s:%d" % s.getsockname()[:2], flush=True)
    while True:
        cli, addr = s.accept()
        gevent.spawn(handle_request, cli)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7788)
    parser.add_argument("--backlog", type=int, default=128)
    args = parser.parse_args()
    server(args.host, args.port, args.backlog)
