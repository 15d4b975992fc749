"""Polite HTTP GETs for the downloaders: a bounded number in flight, a retry on a dropped connection or a 5xx."""

from __future__ import annotations

import asyncio

import aiohttp

RETRIES = 3
BACKOFF_S = 0.5


class Unreachable(RuntimeError):
    """The source did not answer (connection refused, timed out, or kept answering 5xx)."""


async def get(session: aiohttp.ClientSession, limit: asyncio.Semaphore, url: str,
              params: dict | None = None) -> tuple[int, bytes]:
    """``(status, body)`` of ``GET url``; 404 and other 4xx are answers, not failures."""
    last = ""
    for attempt in range(RETRIES):
        if attempt:
            await asyncio.sleep(BACKOFF_S * attempt)
        try:
            async with limit, session.get(url, params=params) as r:
                body = await r.read()
                if r.status < 500 and r.status != 429:
                    return r.status, body
                last = f"HTTP {r.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
    raise Unreachable(f"{url}: {last} ({RETRIES} tries)")


def session(timeout_s: float = 60.0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                 headers={"User-Agent": "basisbot-data-download"})
