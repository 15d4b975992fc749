"""`[control]`: the operator's commands to a running node (pause, resume, flatten, status).

Control is off unless `token_env` names an environment variable (or `.env` entry) holding the token: the ops server
then accepts POST /control with ``Authorization: Bearer <token>``, the status page shows its buttons, and `basisbot
control` sends the token it reads from the same variable. Telegram is optional: `telegram_token_env` names the
variable holding the bot token, `telegram_chat_ids` the only chats whose commands are obeyed.

The token values are read once (`read_secret`) into `SecretStr`: never logged, journaled, exported or shown.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ControlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    token_env: str | None = Field(None, pattern=ENV_NAME,
                                  description="environment variable holding the control token (unset: control off)")
    telegram_token_env: str | None = Field(None, pattern=ENV_NAME,
                                           description="environment variable holding the Telegram bot token")
    telegram_chat_ids: list[int] = Field(default_factory=list,
                                         description="the Telegram chats whose commands are obeyed (allow-list)")
    telegram_base_url: str | None = Field(None, description="Bot API root (default Telegram's; a local fake in tests)")
    telegram_poll_s: float = Field(10.0, gt=0, le=60, description="long-poll timeout of getUpdates")
    ack_timeout_s: float = Field(5.0, gt=0, le=60, description="how long a command waits for the node's answer")


def read_secret(var: str | None, env_file: str | Path | None = None) -> SecretStr | None:
    """The value of environment variable `var` (else of the `.env` entry), or None when unset or empty."""
    if not var:
        return None
    value = os.environ.get(var)
    if not value and env_file and Path(env_file).is_file():
        from dotenv import dotenv_values

        value = dotenv_values(env_file).get(var)
    return SecretStr(value) if value else None


__all__ = ["ControlSettings", "read_secret"]
