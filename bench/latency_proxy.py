#!/usr/bin/env python3
"""A TCP proxy on loopback that delays every chunk by a fixed time each way, to time sluice as if
PostgreSQL were across a network (the machines here have no netem).

Usage: bench/latency_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS
Then point --database-url at 127.0.0.1:LISTEN_PORT. Stop it with Ctrl-C or kill.
"""
import asyncio
import sys


async def pipe(reader, writer, delay):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(listen_port, target_port, delay):
    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_reader, server_writer, delay),
                             pipe(server_reader, client_writer, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000))
