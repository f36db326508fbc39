#!/usr/bin/env python3
# coding=utf-8
"""Threaded TCP echo server, written the way socket-programming course scripts write it:
one listening socket, accept() in a loop, one threading.Thread per client doing
recv(1024) / send until the client closes.

It is the lab's baseline (`sockit lab serve --model python-threads`). The only additions
to the course version are command-line flags for the address and backlog and one line
on stdout announcing the bound address, so the lab can start it on port 0 and wait for
that line instead of sleeping.
"""
import argparse
from socket import socket, AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR
from threading import Thread


def deal_with_client(new_socket, dest_addr):
    try:
        while True:
            recv_data = new_socket.recv(1024)
            if len(recv_data) > 0:
                new_socket.sendall(recv_data)
            else:
                break
    except OSError:
        # the client reset the connection
        pass
    finally:
        new_socket.close()


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

    try:
        while True:
            new_socket, dest_addr = ser_socket.accept()
            client = Thread(target=deal_with_client, args=(new_socket, dest_addr))
            client.daemon = True
            client.start()
    finally:
        ser_socket.close()


if __name__ == "__main__":
    main()
