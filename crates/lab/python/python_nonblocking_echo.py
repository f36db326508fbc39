#!/usr/bin/env python3
# coding=utf-8
"""Single-process non-blocking TCP echo server, as the course writes it ("单进程服务器-
非堵塞模式"): the listening socket and every client socket are setblocking(False); one
endless loop tries accept(), then recv(1024) on every client, and catches the exception
a socket raises when it has nothing. No readiness API: the loop burns a core even idle.

Lab model `python-nonblocking`. Changes from the course version: the echo. A
non-blocking send may take only part of the data, so each client keeps the bytes not
yet sent and the loop retries them before reading more (the course's version printed
instead of echoing). No print per message; flags and the "listening on" line.
"""
import argparse
from socket import socket, AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7788)
    parser.add_argument("--backlog", type=int, default=1000)
    args = parser.parse_args()

    ser_socket = socket(AF_INET, SOCK_STREAM)
    ser_socket.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    ser_socket.bind((args.host, args.port))
    ser_socket.listen(args.backlog)
    # non-blocking: accept() raises when no client is waiting
    ser_socket.setblocking(False)
    print("listening on %s:%d" % ser_socket.getsockname()[:2], flush=True)

    # [socket, bytes not yet echoed, client closed its side]
    g_socket_list = []
    while True:
        try:
            new_socket, dest_addr = ser_socket.accept()
        except BlockingIOError:
            pass
        else:
            new_socket.setblocking(False)
            g_socket_list.append([new_socket, b"", False])

        need_del_client_list = []
        for client in g_socket_list:
            client_socket = client[0]
            try:
                if not client[1] and not client[2]:
                    recv_data = client_socket.recv(1024)
                    if len(recv_data) > 0:
                        client[1] = recv_data
                    else:
                        client[2] = True
                if client[1]:
                    sent = client_socket.send(client[1])
                    client[1] = client[1][sent:]
                elif client[2]:
                    need_del_client_list.append(client)
            except BlockingIOError:
                pass
            except OSError:
                need_del_client_list.append(client)

        for client in need_del_client_list:
            client[0].close()
            g_socket_list.remove(client)


if __name__ == "__main__":
    main()
