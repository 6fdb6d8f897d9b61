"""An SMTP server that accepts every message and keeps none, for the load test (scripts/load.sh).

    python smtp_sink.py

Run with a Python that has aiosmtpd (scripts/load.sh makes a venv with it). Listens on a
free port of 127.0.0.1 that the system picks at the bind (so no other process can take it
in between), then prints that port on a line of its own: a reader of its standard output
knows that the port accepts as soon as it has the line, and that the sink died if the
output ends first. On SIGTERM or SIGINT it prints "received N messages" and exits 0.
"""

import asyncio
import signal

from aiosmtpd.smtp import SMTP


class Count:
    """aiosmtpd's handler: accepts each message and counts it."""

    def __init__(self):
        self.messages = 0

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        return "250 OK"


def main():
    handler = Count()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, loop=loop), "127.0.0.1", 0)
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, loop.stop)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()
    server.close()
    print(f"received {handler.messages} messages", flush=True)


if __name__ == "__main__":
    main()
