#!/usr/bin/env python3
# coding=utf-8
"""asyncio TCP echo server: the modern answer to the course's coroutine chapter.
asyncio.start_server runs one coroutine per client on an event loop (epoll underneath);
`await reader.read(1024)` and `await writer.drain()` suspend it instead of a thread.

Lab model `python-asyncio`: flags for the address and backlog and one "listening on"
line on stdout, like the course scripts.
"""
import argparse
import asyncio


async def handle_client(reader, writer):
    try:
        while True:
            data = await reader.read(1024)
            if not data:
                break
            writer.write(data)
            # wait while the socket's send buffer is full (backpressure)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(host, port, backlog):
    server = await asyncio.start_server(handle_client, host, port, backlog=backlog,
                                        reuse_address=True)
    print("listening on %s:%d" % server.sockets[0].getsockname()[:2], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7788)
    parser.add_argument("--backlog", type=int, default=128)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port, args.backlog))
