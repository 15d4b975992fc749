"""`basisbot control --config F {pause,resume,flatten,status} (SYMBOL ... | --all)`: a command to the running node
through its ops server (`[live] metrics_host:metrics_port`, POST /control with the token from `[control] token_env`).

Exit status: 0 the node acknowledged (each symbol's answer printed), 1 no node answered or it refused (wrong token,
not running yet, no answer in time), 2 bad input (no command, unknown symbol, neither symbols nor --all, control off
in the config, the token variable not set).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from basisbot.config.control import read_secret
from basisbot.config.loading import load_settings

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def add_arguments(p) -> None:
    p.add_argument("action", choices=("pause", "resume", "flatten", "status"), help="the command")
    p.add_argument("symbols", nargs="*", metavar="SYMBOL", help="the symbols it applies to")
    p.add_argument("--all", action="store_true", help="every symbol the node trades")
    p.add_argument("--reason", default="", help="a note journaled with the command")
    p.add_argument("--url", help="the ops server (default http://[live] metrics_host:metrics_port)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the node's answer")


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def control_main(args) -> int:
    settings = load_settings(args.config, env_file=args.env_file, check_venue=False)
    c = settings.control
    if not c.token_env:
        _err("control is off: set [control] token_env to the name of the environment variable holding the control "
             "token (the node must run with it set too)")
        return EXIT_BAD_INPUT
    token = read_secret(c.token_env, args.env_file)
    if token is None:
        _err(f"control.token_env = {c.token_env!r}: the variable is not set in the environment or {args.env_file}")
        return EXIT_BAD_INPUT
    symbols = [s.strip().upper() for s in args.symbols if s.strip()]
    if args.all and symbols:
        _err("give symbols or --all, not both")
        return EXIT_BAD_INPUT
    if not symbols and not args.all and args.action != "status":
        _err(f"{args.action}: name the symbols (SYMBOL ...) or --all")
        return EXIT_BAD_INPUT
    unknown = [s for s in symbols if s not in settings.symbols]
    if unknown:
        _err(f"unknown symbol(s) {', '.join(unknown)} (the config has {', '.join(sorted(settings.symbols))})")
        return EXIT_BAD_INPUT
    url = args.url
    if not url:
        ls = settings.live
        if not ls.metrics_port:
            _err("[live] metrics_port is not set (or 0): the node serves no ops server to talk to; give --url")
            return EXIT_BAD_INPUT
        host = f"[{ls.metrics_host}]" if ":" in ls.metrics_host else ls.metrics_host
        url = f"http://{host}:{ls.metrics_port}"
    body = json.dumps({"command": args.action, "symbols": symbols or "all", "origin": "cli",
                       "reason": args.reason}).encode()
    req = urllib.request.Request(url.rstrip("/") + "/control", data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token.get_secret_value()}"})
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as r:
            code, answer = r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        code = e.code
        try:
            answer = json.loads(e.read() or b"{}")
        except ValueError:
            answer = {"error": f"HTTP {e.code}"}
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        _err(f"no node answered at {url}: {reason} (is `basisbot live|paper` running with this config? The ops server answers once the node has started)")
        return EXIT_FAILURE
    except ValueError:
        _err(f"{url} answered something that is not a basisbot ops server")
        return EXIT_FAILURE
    if code == 200 and answer.get("ok"):
        for r in answer.get("results") or []:
            pair = f", pair {r['pair']} in flight" if r.get("pair") else ""
            print(f"{r['symbol']}: {r['answer']} -> {r['state']} (phase {r['phase']}, spot {r['spot_qty']}, "
                  f"perp {r['perp_qty']}{pair})")
        if not answer.get("results"):
            print("the node acknowledged; no strategy answered")
        return EXIT_OK
    msg = answer.get("error") or f"HTTP {code}"
    _err(f"{url}: {msg}")
    return EXIT_BAD_INPUT if code == 400 else EXIT_FAILURE


__all__ = ["add_arguments", "control_main"]
