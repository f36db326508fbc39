#!/usr/bin/env python3
# coding=utf-8
"""select() TCP echo server, as the course's version with a write list ("select版-TCP服务
器", the one with message_queue): select() over an input list (the listener and every
client) and an output list (clients with queued replies); recv(1024) puts the data in
that client's message queue, and the reply is sent once select() says it is writable.

Lab model `python-select`. Changes from the course version: a client's queue is a deque
of bytes (the course's Queue.Queue takes a lock this single thread never needs) and a
short send puts the rest back at its front; a client that closes its side is closed
only once its queue is empty; clients whose descriptor select() cannot watch (>= 1024,
FD_SETSIZE on Linux) are refused instead of crashing the loop. No print per message;
flags and the "listening on" line.
"""
import argparse
import sys
from collections import deque
from select import select
from socket import socket, AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR

FD_SETSIZE = 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--backlog", type=int, default=128)
    args = parser.parse_args()

    server = socket(AF_INET, SOCK_STREAM)
    server.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    server.bind((args.host, args.port))
    server.listen(args.backlog)
    server.setblocking(False)
    print("listening on %s:%d" % server.getsockname()[:2], flush=True)

    # the messages each client sent and that are not echoed yet
    message_queue = {}
    input_list = [server]
    output_list = []
    # clients that closed their side while replies were still queued
    closing = set()
    # clients refused for their descriptor (the warning is printed once)
    refused = 0

    def drop(obj):
        if obj in input_list:
            input_list.remove(obj)
        if obj in output_list:
            output_list.remove(obj)
        message_queue.pop(obj, None)
        closing.discard(obj)
        obj.close()

    while True:
        readable, writable, _ = select(input_list, output_list, [])

        for obj in readable:
            if obj is server:
                try:
                    conn, addr = server.accept()
                except BlockingIOError:
                    continue
                if conn.fileno() >= FD_SETSIZE:
                    if not refused:
                        print("refusing clients: fd %d >= FD_SETSIZE (%d); select() cannot "
                              "watch it" % (conn.fileno(), FD_SETSIZE), file=sys.stderr)
                    refused += 1
                    conn.close()
                    continue
                conn.setblocking(False)
                input_list.append(conn)
                message_queue[conn] = deque()
            else:
                try:
                    recv_data = obj.recv(1024)
                except BlockingIOError:
                    continue
                except OSError:
                    drop(obj)
                    continue
                if recv_data:
                    message_queue[obj].append(recv_data)
                    if obj not in output_list:
                        output_list.append(obj)
                elif message_queue[obj]:
                    input_list.remove(obj)
                    closing.add(obj)
                else:
                    drop(obj)

        for obj in writable:
            if obj not in message_queue:
                continue  # closed above in this pass
            queue = message_queue[obj]
            try:
                send_data = queue.popleft()
                sent = obj.send(send_data)
                if sent < len(send_data):
                    queue.appendleft(send_data[sent:])
            except BlockingIOError:
                queue.appendleft(send_data)
                continue
            except OSError:
                drop(obj)
                continue
            if not queue:
                output_list.remove(obj)
                if obj in closing:
                    drop(obj)


if __name__ == "__main__":
    main()
