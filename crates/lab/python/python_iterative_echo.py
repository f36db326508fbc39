#!/usr/bin/env python3
# coding=utf-8
"""Single-process TCP echo server, as the course's first server ("单进程服务器"):
accept() one client, recv(1024) / sendall until it closes, then the next one. Clients
that connect meanwhile wait in the listen queue.

Lab model `python-iterative`. Changes from the course version: the echo (sendall
instead of print), no print per message, flags for the address and backlog, and one
line on stdout announcing the bound address so the lab can start it on port 0.
"""
import argparse
from socket import socket, AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7788)
    parser.add_argument("--backlog", type=int, default=128)
    args = parser.parse_args()

    ser_socket = socket(AF_INET, SOCK_STREAM)
    ser_socket.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    ser_socket.bind((args.host, args.port))
    ser_socket.listen(args.backlog)
    print("listening on %s:%d" % ser_socket.getsockname()[:2], flush=True)

    while True:
        new_socket, dest_addr = ser_socket.accept()
        try:
            while True:
                recv_data = new_socket.recv(1024)
                if len(recv_data) > 0:
                    new_socket.sendall(recv_data)
                else:
                    # an empty recv: the client closed its side
                    break
        except OSError:
            # the client reset the connection
            pass
        finally:
            new_socket.close()


if __name__ == "__main__":
    main()
