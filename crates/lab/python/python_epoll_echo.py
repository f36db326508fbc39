#!/usr/bin/env python3
# coding=utf-8
"""epoll TCP echo server, as the course writes it ("epoll版-TCP服务器"): select.epoll()
with the listener and every client registered EPOLLIN | EPOLLET (edge-triggered),
connections and addresses kept in dicts keyed by fd.

Lab model `python-epoll`. Edge-triggered means epoll reports a socket once per change,
so every event is drained until the socket says BlockingIOError (the course's version
accepted and read once per event, which loses clients and data under load). Clients
are also registered for EPOLLOUT so a reply that did not fit in one send is finished
when the socket becomes writable. No print per message; flags and the "listening on"
line.
"""
import argparse
import select
import socket


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7788)
    parser.add_argument("--backlog", type=int, default=128)
    args = parser.parse_args()

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.host, args.port))
    s.listen(args.backlog)
    s.setblocking(False)
    print("listening on %s:%d" % s.getsockname()[:2], flush=True)

    epoll = select.epoll()
    epoll.register(s.fileno(), select.EPOLLIN | select.EPOLLET)
    connections = {}
    # bytes a short send left behind, per fd
    pending = {}

    def close(fd):
        epoll.unregister(fd)
        connections.pop(fd).close()
        pending.pop(fd, None)

    def pump(fd):
        """Finish the pending reply, then echo until recv would block."""
        conn = connections[fd]
        try:
            while True:
                data = pending.pop(fd, None)
                if data is None:
                    data = conn.recv(1024)
                    if not data:
                        close(fd)
                        return
                try:
                    sent = conn.send(data)
                except BlockingIOError:
                    sent = 0
                if sent < len(data):
                    # wait for EPOLLOUT before reading more
                    pending[fd] = data[sent:]
                    return
        except BlockingIOError:
            return
        except OSError:
            close(fd)

    while True:
        epoll_list = epoll.poll()
        for fd, events in epoll_list:
            if fd == s.fileno():
                while True:
                    try:
                        conn, addr = s.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    connections[conn.fileno()] = conn
                    epoll.register(conn.fileno(),
                                   select.EPOLLIN | select.EPOLLOUT | select.EPOLLET)
                    # data may already be waiting: no new edge would announce it
                    pump(conn.fileno())
            elif fd in connections:
                pump(fd)


if __name__ == "__main__":
    main()
