"""User-data stream listen keys of the two accounts (spot, futures), with Binance's expiry and keepalive."""

from __future__ import annotations

import secrets
import time

from basisbot.sim.engine import errors


class ListenKeys:
    """Listen keys of both accounts; one active key per account (POST returns it and extends it, like Binance)."""

    def __init__(self, ttl_s: float, wall=time.monotonic):
        self.ttl_s = ttl_s
        self.wall = wall
        self.keys: dict[str, tuple[str, float]] = {}

    def _purge(self) -> list[str]:
        now = self.wall()
        dead = [k for k, (_, exp) in self.keys.items() if exp <= now]
        for k in dead:
            del self.keys[k]
        return dead

    def create(self, account: str) -> str:
        key = self.active(account)
        if key is None:
            key = secrets.token_urlsafe(48).replace("-", "A").replace("_", "b")[:64]
        self.keys[key] = (account, self.wall() + self.ttl_s)
        return key

    def active(self, account: str) -> str | None:
        self._purge()
        for k, (acct, _) in self.keys.items():
            if acct == account:
                return k
        return None

    def keepalive(self, key: str, account: str) -> None:
        self._purge()
        if key not in self.keys or self.keys[key][0] != account:
            raise errors.listen_key_missing()
        self.keys[key] = (account, self.wall() + self.ttl_s)

    def delete(self, key: str, account: str) -> None:
        if key not in self.keys or self.keys[key][0] != account:
            raise errors.listen_key_missing()
        del self.keys[key]

    def account_of(self, key: str) -> str | None:
        entry = self.keys.get(key)
        if entry is None or entry[1] <= self.wall():
            return None
        return entry[0]

    def expired(self) -> list[str]:
        return self._purge()
