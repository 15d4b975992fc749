"""Self-contained HTML report of a backtest."""

from __future__ import annotations

import html
import json
from pathlib import Path


def write_report(result, summary: dict, path: Path) -> None:
    path.write_text("<!doctype html><meta charset='utf-8'><title>basisbot backtest</title><pre>"
                    + html.escape(json.dumps(summary, indent=2)) + "</pre>")
