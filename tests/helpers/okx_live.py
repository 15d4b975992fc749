"""Helpers for driving a live/paper node on `[exchange] name = "okx"` against the local OKX venue
(`basisbot sim --exchange okx`) in tests and benchmarks: the venue's config on the bundled OKX data and the node's
settings with OKX's three credentials (key, secret, passphrase)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from basisbot.config.loading import load_settings
from basisbot.config.schema import Settings
from basisbot.sim import SimConfig
from tests.helpers.live_node import write_config

DATA = Path(__file__).resolve().parents[2] / "backtests" / "data" / "okx"
KEY, SECRET, PASSPHRASE = "okxkey" + "a" * 26, "okxsecret" + "b" * 23, "okx-Pass1"


def okx_sim_config(**overrides) -> SimConfig:
    base = dict(data_dir=DATA, api_key=KEY, api_secret=SECRET, exchange="okx", api_passphrase=PASSPHRASE,
                speed=600.0, start="2022-03-01T06:00:00Z", symbols=["BTCUSDT"])
    base.update(overrides)
    return SimConfig(**base)


def okx_config(folder: Path, url: str, **kwargs) -> Path:
    """`tests.helpers.live_node.write_config` with `[exchange] name = "okx"`."""
    path = write_config(folder, url, **kwargs)
    path.write_text(path.read_text(encoding="utf-8") + '[exchange]\nname = "okx"\n', encoding="utf-8")
    return path


def okx_settings(folder: Path, url: str, *, credentials: bool = True, **kwargs) -> Settings:
    s = load_settings(okx_config(folder, url, **kwargs), env_file=None)
    if credentials:
        s = s.model_copy(update={"api_key": SecretStr(KEY), "api_secret": SecretStr(SECRET),
                                 "api_passphrase": SecretStr(PASSPHRASE)})
    return s


def okx_subprocess_env(**extra) -> dict:
    """Environment for `python -m basisbot.live` on OKX: the venue's three credentials, no other BASISBOT_ overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASISBOT_")}
    env.update(BASISBOT_API_KEY=KEY, BASISBOT_API_SECRET=SECRET, BASISBOT_API_PASSPHRASE=PASSPHRASE,
               PYTHONUNBUFFERED="1", **extra)
    return env
