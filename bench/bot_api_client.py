"""CPU per Bot API call: PTB's default httpx client against Kundenpuls's aiohttp client.

    python bench/bot_api_client.py [--calls 3000] [--in-flight 4] [--rounds 3]

The fake Bot API server runs in a child process, so this process's CPU time is the client's alone. Each
round makes ``--calls`` ``sendMessage`` calls through a real ``telegram.Bot`` with each client, at most
``--in-flight`` at once (as the bot does), and reads ``time.process_time()`` around them. The ratio is
aiohttp's CPU per call over httpx's, per round, then the median. Exit status 0, or 2 if a call failed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import signal
import statistics
import sys
import time
from multiprocessing.queues import Queue
from pathlib import Path

from telegram import Bot
from telegram.request import BaseRequest, HTTPXRequest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.telegram_http import AiohttpRequest
from tests.fakes.bot_api_server import DEFAULT_TOKEN, FakeBotApiThread


def _serve(urls: Queue[str]) -> None:
    server = FakeBotApiThread()
    server.start()
    urls.put(server.url)
    signal.pause()


async def _cpu_per_call(client: BaseRequest, url: str, calls: int, in_flight: int) -> float:
    """Return the CPU milliseconds this process spent per call."""
    bot = Bot(DEFAULT_TOKEN, base_url=f"{url}/bot", request=client)
    await bot.initialize()
    slots = asyncio.Semaphore(in_flight)

    async def send(number: int) -> None:
        async with slots:
            await bot.send_message(chat_id=1_000 + number % 50, text=f"Nachricht {number}")

    try:
        started = time.process_time()
        await asyncio.gather(*(send(number) for number in range(calls)))
        return (time.process_time() - started) / calls * 1000
    finally:
        await bot.shutdown()


def main() -> int:
    """Measure both clients ``--rounds`` times and print the medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    urls: Queue[str] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(urls,), daemon=True)
    server.start()
    try:
        url = urls.get(timeout=30)
        pool = args.in_flight + 2
        ratios, httpx_ms, aiohttp_ms = [], [], []
        for round_number in range(1, args.rounds + 1):
            slow = asyncio.run(
                _cpu_per_call(HTTPXRequest(connection_pool_size=pool), url, args.calls, args.in_flight)
            )
            fast = asyncio.run(
                _cpu_per_call(AiohttpRequest(connection_pool_size=pool), url, args.calls, args.in_flight)
            )
            httpx_ms.append(slow)
            aiohttp_ms.append(fast)
            ratios.append(fast / slow)
            print(f"round {round_number}: httpx {slow:.3f} ms, aiohttp {fast:.3f} ms CPU per call")
    except Exception as error:  # a failed call or a server that never came up
        print(f"benchmark failed: {error!r}", file=sys.stderr)
        return 2
    finally:
        server.terminate()
    print(
        f"median CPU per call: PTB's HTTPXRequest {statistics.median(httpx_ms):.3f} ms, "
        f"AiohttpRequest {statistics.median(aiohttp_ms):.3f} ms; ratio {statistics.median(ratios):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
