#!/usr/bin/env python3
# coding=utf-8
"""Multi-process TCP echo server, as the course writes it ("多进程服务器"): accept() in
the main process, a multiprocessing.Process per client doing recv(1024) / sendall, and
the parent closes its copy of the client socket.

Lab model `python-fork`. Changes from the course version: the echo (sendall instead of
print), no print per message, flags for the address and backlog, the "listening on"
line, and the start method pinned to "fork": that is what the course relies on (the
child inherits the socket), and Python 3.14 no longer uses it by default on Linux.
"""
import argparse
import multiprocessing
from multiprocessing import Process
from socket import socket, AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR


def deal_with_client(new_socket, dest_addr):
    try:
        while True:
            recv_data = new_socket.recv(1024)
            if len(recv_data) > 0:
                new_socket.sendall(recv_data)
            else:
                break
    except OSError:
        pass
    finally:
        new_socket.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7788)
    parser.add_argument("--backlog", type=int, default=128)
    args = parser.parse_args()
    multiprocessing.set_start_method("fork")

    ser_socket = socket(AF_INET, SOCK_STREAM)
    ser_socket.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    ser_socket.bind((args.host, args.port))
    ser_socket.listen(args.backlog)
    print("listening on %s:%d" % ser_socket.getsockname()[:2], flush=True)

    try:
        while True:
            new_socket, dest_addr = ser_socket.accept()
            client = Process(target=deal_with_client, args=(new_socket, dest_addr))
            client.start()
            # the child has its own copy (reference) of the socket: close ours
            new_socket.close()
    finally:
        ser_socket.close()


if __name__ == "__main__":
    main()
