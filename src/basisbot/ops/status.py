"""`basisbot status` and `basisbot journal`: read-only views of the journal (never blocking the running bot's writer).

- `status_main(args)`: per symbol: legs, hedge ratio (actual vs target), basis, predicted funding and the countdown to
  the next settlement, accrued funding (expected for the next settlement at the predicted rate on the current
  position), settled funding, distance to liquidation, phase and the last guard action. Exit 0, also when there is no
  journal yet (it says so); 2 for a bad config. The same as data: `symbol_status`, `status_data` (with the PnL split,
  the last day's funding / liquidation-distance series and recent guard actions and decisions: the status page).
- `journal_main(args)`: `--format table` (the latest rows of each table), `json` (ONE object with lists `orders`,
  `fills`, `funding`, `guard`, `legs`, `decisions`, `config_changes`, `positions`, `alerts`; to stdout, or to `--out FILE`),
  `csv` (one `<table>.csv` per table into the folder `--out`).

The journal path is `settings.journal`, relative to the current directory.

Data functions (no printing; other views may use them): `venue_clock_view`, `fresh_prices`, `symbol_pnl`. Against a
replaying venue (the journal's `venue_clock`), times are shown in venue time with the wall countdown beside; the mark
and basis come from the latest mark record (`marks`, at most a second old while the bot runs), not from the last
position snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from pathlib import Path

from basisbot.config.loading import ConfigError, load_settings
from basisbot.config.schema import Settings
from basisbot.core.carry import expected_funding
from basisbot.core.pnl import base_asset, pnl_split
from basisbot.core.units import NS
from basisbot.journal.writer import EXPORT_ORDER, JournalReader
from basisbot.ops.alert_events import apr

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _ts(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / NS, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _countdown(seconds: float) -> str:
    s = int(max(seconds, 0))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {sec:02d}s"


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def no_journal_message(path: Path) -> str:
    return (f"no journal yet at {path}: the bot has not run in paper or live mode from this directory "
            "(the journal path is `journal` in the config, relative to the current directory)")


# -- data functions (pure reads of the journal, tested apart from the printing) -----------------------------------
def venue_clock_view(r: JournalReader, now_ns: int) -> dict | None:
    """{"speed", "venue_now_ns", "to_venue_ns": f(local ns) -> venue ns} from the journal's venue time base, or None
    (against Binance: wall time is venue time)."""
    c = r.venue_clock() if r._has("venue_clock") else None
    if not c or not c.get("speed"):
        return None
    speed, v0, l0 = float(c["speed"]), int(c["venue_ms"]) * 1_000_000, int(c["local_ns"])

    def to_venue(local_ns: int) -> int:
        return v0 + int((local_ns - l0) * speed)

    return {"speed": speed, "venue_now_ns": to_venue(now_ns), "to_venue_ns": to_venue}


def fresh_prices(r: JournalReader, symbol: str) -> dict:
    """The newest mark and spot price known: the latest mark record, else the latest position snapshot.
    {"mark", "spot_price", "ts", "source": "mark" | "snapshot" | None}."""
    m = r.latest_mark(symbol) if r._has("marks") else None
    pos = r.latest_position(symbol)
    if m and (not pos or m["ts"] >= (pos["ts"] or 0)):
        spot = m["spot_price"] if m["spot_price"] is not None else (pos or {}).get("spot_price")
        return {"mark": m["mark"], "spot_price": spot, "ts": m["ts"], "source": "mark"}
    if pos:
        return {"mark": pos["mark"], "spot_price": pos["spot_price"], "ts": pos["ts"], "source": "snapshot"}
    return {"mark": None, "spot_price": None, "ts": None, "source": None}


def symbol_pnl(r: JournalReader, symbol: str, mark: float | None, spot_price: float | None,
               prices: dict[str, float] | None = None) -> dict:
    """`basisbot.core.pnl.pnl_split` of `symbol` from the journal's fills and settled funding, marked to `mark` (perp)
    and `spot_price` (spot)."""
    funding, _, _ = r.funding_settled(symbol)
    return pnl_split(r.fills_of(symbol), spot_price, mark, funding, base=base_asset(symbol), prices=prices)


def unpriced_fees_note(pnl: dict) -> str:
    """What a view adds after the net when some fees have no USDT price (left out of fees and net)."""
    un = pnl.get("unpriced_fees") or {}
    return (" (fees not priced, left out: " + ", ".join(f"{v:g} {k}" for k, v in sorted(un.items())) + ")") if un else ""


_ASK = object()  # symbol_status: read the venue clock from the journal


def symbol_status(r: JournalReader, symbol: str, settings: Settings, now_ns: int, vclock=_ASK) -> dict:
    """What `basisbot status` and the status page show for one symbol, as data (None where unknown):
    {symbol, configured, enabled, phase, position (latest snapshot row), spot_qty, perp_qty, mark, spot_price,
    hedge_ratio, target_hedge_ratio, basis, prediction: {rate, interval_minutes, apr, next_settlement_ns, projected}
    | None, accrued, settled: {total, count, flagged}, liquidation_price, distance, last_guard, last_decision}."""
    cfg = settings.symbols.get(symbol)
    pos = r.latest_position(symbol)
    spot_qty = pos["spot_qty"] if pos else None
    perp_qty = pos["perp_qty"] if pos else None
    fresh = fresh_prices(r, symbol)  # the latest mark record, else the last position snapshot
    mark, spot_px = fresh["mark"], fresh["spot_price"]
    out = {"symbol": symbol, "configured": cfg is not None, "enabled": bool(cfg and cfg.enabled),
           "phase": r.phase(symbol), "position": pos, "spot_qty": spot_qty, "perp_qty": perp_qty, "mark": mark,
           "spot_price": spot_px, "target_hedge_ratio": cfg.hedge_ratio if cfg else None,
           "hedge_ratio": abs(perp_qty) / spot_qty if (spot_qty and perp_qty is not None) else None,
           "basis": mark / spot_px - 1 if (mark and spot_px) else None, "prediction": None, "accrued": None}
    out["fresh"] = fresh  # where mark and spot price come from: {mark, spot_price, ts, source}
    if vclock is _ASK:
        vclock = venue_clock_view(r, now_ns)
    out["venue_speed"] = vclock["speed"] if vclock else None
    pred = r.latest_prediction(symbol)
    if pred:
        rate = pred["predicted_rate"]
        interval = pred["interval_minutes"] or 480
        # settlement times are on the node's clock; against a replaying venue the interval is in venue time
        step = int(interval * 60 * NS / vclock["speed"]) if vclock else interval * 60 * NS
        nxt = pred["settlement_ts"]
        projected = nxt <= now_ns
        while nxt <= now_ns:  # the prediction's settlement has passed: the next one is an interval later
            nxt += step
        out["prediction"] = {"rate": rate, "interval_minutes": interval, "apr": apr(rate, interval),
                             "next_settlement_ns": nxt, "projected": projected}
        out["accrued"] = expected_funding(perp_qty, mark, rate)
    total, n, flagged = r.funding_settled(symbol)
    out["settled"] = {"total": total, "count": n, "flagged": flagged}
    lp = pos["liquidation_price"] if pos else None
    out["liquidation_price"] = lp
    # short perp: the liquidation price is above the mark; long: below
    out["distance"] = ((lp - mark) / mark if (perp_qty or 0) < 0 else (mark - lp) / mark) if (lp and mark) else None
    out["last_guard"] = r.latest_guard(symbol)
    out["last_decision"] = r.latest_decision(symbol)
    out["adl_rank"] = adl_rank_of(r.latest_action(symbol, "adl_rank"))
    return out


def adl_rank_of(row: dict | None) -> dict | None:
    """{"rank", "top", "ts"} from a journaled "adl_rank" decision ("ADL quantile R of T"), None when unknown."""
    m = re.search(r"(\d+) of (\d+)", str(row.get("reason") or "")) if row else None
    return {"rank": int(m.group(1)), "top": int(m.group(2)), "ts": row.get("ts")} if m else None


def status_symbols(r: JournalReader, settings: Settings) -> list[str]:
    """Every enabled configured symbol, then any other symbol the journal knows."""
    known = r.symbols()
    symbols = [s for s in settings.symbols if settings.symbols[s].enabled or s in known]
    return symbols + [s for s in known if s not in symbols]


def symbol_history(r: JournalReader, symbol: str, since_ns: int) -> dict:
    """Series since `since_ns` for charts: {"distance": [(ts, distance)] from the position snapshots,
    "funding": [(settlement_ts, rate)] (settled rate where known, else predicted)}."""
    dist = []
    for p in r.rows("positions", "symbol = ? AND ts >= ?", [symbol, since_ns], order_by="ts"):
        lp, mark, q = p["liquidation_price"], p["mark"], p["perp_qty"]
        if lp and mark and q:
            dist.append((p["ts"], (lp - mark) / mark if q < 0 else (mark - lp) / mark))
    funding = []
    for f in r.rows("funding", "symbol = ? AND settlement_ts >= ?", [symbol, since_ns], order_by="settlement_ts"):
        rate = f["settled_rate"] if f["settled_rate"] is not None else f["predicted_rate"]
        if rate is not None:
            funding.append((f["settlement_ts"], rate))
    return {"distance": dist, "funding": funding}


def status_data(journal_path: str | Path, settings: Settings, now_ns: int | None = None, *,
                history_s: float = 86_400, recent: int = 8) -> dict:
    """Everything the status page shows: {"journal", "exists", "mode", "now_ns", "symbols": [symbol_status + "pnl",
    "history", "guard" (recent actions), "decisions" (recent)], "last_config_change"}."""
    path = Path(journal_path)
    now_ns = time.time_ns() if now_ns is None else now_ns
    data = {"journal": str(path), "exists": path.exists(), "mode": settings.mode, "now_ns": now_ns, "symbols": [],
            "last_config_change": None}
    if not path.exists():
        data["symbols"] = [{"symbol": s, "phase": "flat", "configured": True, "enabled": True, "distance": None,
                            "no_journal": True} for s, c in settings.symbols.items() if c.enabled]
        return data
    since = now_ns - int(history_s * NS)
    with JournalReader(path) as r:
        for s in status_symbols(r, settings):
            st = symbol_status(r, s, settings, now_ns)
            st["pnl"] = symbol_pnl(r, s, st["mark"], st["spot_price"])
            st["history"] = symbol_history(r, s, since)
            st["guard"] = r.rows("guard", "symbol = ?", [s], order_by="ts DESC, rowid DESC", limit=recent)
            st["decisions"] = r.rows("decisions", "symbol = ?", [s], order_by="ts DESC, rowid DESC", limit=recent)
            data["symbols"].append(st)
        changes = r.rows("config_changes", order_by="ts DESC", limit=1)
        data["last_config_change"] = changes[0] if changes else None
    return data


def _symbol_block(r: JournalReader, symbol: str, settings: Settings, now_ns: int,
                  vclock: dict | None) -> list[str]:
    st = symbol_status(r, symbol, settings, now_ns, vclock)
    title = f"{symbol}  phase: {st['phase']}"
    if not st["configured"]:
        title += "  (not in the config)"
    elif not st["enabled"]:
        title += "  (disabled in the config)"
    lines = [title]
    pos, spot_qty, perp_qty = st["position"], st["spot_qty"], st["perp_qty"]
    if pos:
        lines.append(f"  legs        spot {_num(spot_qty, '+.6g')}  perp {_num(perp_qty, '+.6g')}"
                     f"  (snapshot {_ts(pos['ts'])})")
    else:
        lines.append("  legs        no position snapshot yet")
    target, actual = st["target_hedge_ratio"], st["hedge_ratio"]
    if actual is not None:
        lines.append(f"  hedge ratio {actual:.4f} (target {_num(target, '.4f')}"
                     + (f", drift {actual / target - 1:+.2%})" if target else ")"))
    else:
        lines.append(f"  hedge ratio - (target {_num(target, '.4f')})")
    fresh = st["fresh"]
    mark, spot_px = st["mark"], st["spot_price"]
    shown = (lambda ns: _ts(vclock["to_venue_ns"](ns))) if vclock else _ts
    if st["basis"] is not None:
        age = f", {max(now_ns - fresh['ts'], 0) / NS:.0f}s old" if fresh["ts"] else ""
        lines.append(f"  basis       {st['basis']:+.4%} (mark {mark:g} / spot {spot_px:g}; "
                     f"{'latest mark' if fresh['source'] == 'mark' else 'position snapshot'} {shown(fresh['ts'])}"
                     f"{age})")
    else:
        lines.append("  basis       - (no mark/spot price recorded yet)")
    p = st["prediction"]
    if p:
        interval, nxt = p["interval_minutes"], p["next_settlement_ns"]
        if vclock:
            left = (nxt - now_ns) / NS
            when = (f"{_ts(vclock['to_venue_ns'](nxt))} venue time in {_countdown(left * vclock['speed'])} "
                    f"({_countdown(left)} wall at {vclock['speed']:g}x)")
        else:
            when = f"{_ts(nxt)} in {_countdown((nxt - now_ns) / NS)}"
        lines.append(f"  funding     predicted {p['rate']:+.6f} per {interval // 60 if interval % 60 == 0 else interval}"
                     f"{'h' if interval % 60 == 0 else 'm'} ({p['apr']:+.2%} APR), next settlement {when}"
                     + (" (projected)" if p["projected"] else ""))
        lines.append(f"  accrued     {_num(st['accrued'], '+.4f')} USDT expected at the next settlement "
                     "(predicted rate, current position)")
    else:
        lines.append("  funding     no prediction yet")
        lines.append("  accrued     -")
    sd = st["settled"]
    lines.append(f"  settled     {sd['total']:+.4f} USDT over {sd['count']} settlement(s)"
                 + (f", {sd['flagged']} flagged (differs from expected)" if sd["flagged"] else ""))
    pnl = symbol_pnl(r, symbol, mark, spot_px)
    lines.append(f"  pnl         funding {pnl['funding']:+.4f}  spot {_num(pnl['spot'], '+.4f')}  perp "
                 f"{_num(pnl['perp'], '+.4f')}  fees {-pnl['fees']:+.4f}  net {_num(pnl['net'], '+.4f')} USDT"
                 + unpriced_fees_note(pnl))
    if st["distance"] is not None:
        lines.append(f"  liquidation {st['distance']:.2%} away (liquidation price {st['liquidation_price']:g}, "
                     f"mark {mark:g})")
    else:
        lines.append("  liquidation -")
    adl = st.get("adl_rank")
    if adl:
        lines.append(f"  adl rank    {adl['rank']} of {adl['top']}"
                     + (" (top bucket: first to be auto-deleveraged)" if adl["rank"] >= adl["top"] else "")
                     + f" at {_ts(adl['ts'])}")
    g = st["last_guard"]
    if g:
        lines.append(f"  guard       last: {g['step']} at {_ts(g['ts'])}, distance {_num(g['distance'], '.2%')}"
                     + (f": {g['reason']}" if g.get("reason") else ""))
    else:
        lines.append("  guard       no action yet")
    d = st["last_decision"]
    if d:
        lines.append(f"  decision    {d['action']} at {_ts(d['ts'])}: {d['reason']}")
    return lines


def render_status(journal_path: str | Path, settings: Settings, now_ns: int | None = None) -> str:
    """The status text for every configured symbol (and any other symbol the journal knows)."""
    path = Path(journal_path)
    if not path.exists():
        return no_journal_message(path)
    now_ns = time.time_ns() if now_ns is None else now_ns
    with JournalReader(path) as r:
        symbols = status_symbols(r, settings)
        out = [f"basisbot status: journal {path}, mode {settings.mode}, venue {settings.venue.display_name}, "
               f"now {_ts(now_ns)}"]
        vclock = venue_clock_view(r, now_ns)
        if vclock and (abs(vclock["venue_now_ns"] - now_ns) > 60 * NS or vclock["speed"] != 1.0):
            out[0] += f"; venue time {_ts(vclock['venue_now_ns'])} (replaying at {vclock['speed']:g}x)"
        if not symbols:
            out.append("no symbols configured and nothing journaled yet")
        for s in symbols:
            out.append("")
            out.extend(_symbol_block(r, s, settings, now_ns, vclock))
        changes = r.rows("config_changes", order_by="ts DESC", limit=1)
        if changes:
            c = changes[0]
            out.append("")
            out.append(f"last config change: {c['status']} at {_ts(c['ts'])} ({c['source']}): {c['message']}")
    return "\n".join(out)


def _load(args) -> Settings | None:
    try:
        return load_settings(args.config, env_file=getattr(args, "env_file", ".env"))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def status_main(args) -> int:
    """`basisbot status --config F [--env-file F]`."""
    settings = _load(args)
    if settings is None:
        return EXIT_BAD_INPUT
    print(render_status(Path(settings.journal), settings))
    return EXIT_OK


_TABLE_COLUMNS = {
    "orders": ("ts_last", "symbol", "leg", "side", "qty", "filled_qty", "avg_px", "type", "status", "tags",
               "client_order_id"),
    "fills": ("ts", "symbol", "leg", "side", "qty", "price", "fee", "fee_currency", "trade_id"),
    "funding": ("settlement_ts", "symbol", "predicted_rate", "settled_rate", "position_qty", "mark_price",
                "expected_payment", "settled_payment", "difference", "flagged"),
    "guard": ("ts", "symbol", "step", "distance", "liquidation_price", "mark", "add_margin", "reduce_fraction",
              "reason"),
    "legs": ("ts", "symbol", "pair_id", "event", "detail", "status"),
    "decisions": ("ts", "symbol", "action", "phase", "reason"),
    "config_changes": ("ts", "status", "scope", "source", "message"),
    "positions": ("ts", "symbol", "spot_qty", "perp_qty", "perp_entry", "isolated_wallet", "liquidation_price",
                  "mark"),
    "marks": ("ts", "symbol", "mark", "spot_price", "source"),
    "venue_clock": ("ts", "venue_ms", "local_ns", "speed"),
    "alerts": ("ts", "symbol", "event", "severity", "channel", "status", "title", "message"),
    "control": ("ts", "symbol", "command", "origin", "answer", "state", "reason"),
    "risk": ("ts", "limit_name", "value", "threshold", "equity", "reference", "action", "detail"),
}


def _cell(col: str, v) -> str:
    if v is None:
        return ""
    if col in ("ts", "ts_last", "settlement_ts"):
        return _ts(v)
    if isinstance(v, float):
        return f"{v:.10g}"
    s = str(v)
    return s if len(s) <= 60 else s[:57] + "..."


def render_tables(data: dict, limit: int = 20) -> str:
    out = []
    for table in EXPORT_ORDER:
        rows = data.get(table, [])
        out.append(f"== {table} ({len(rows)} row{'s' if len(rows) != 1 else ''}"
                   + (f", last {limit} shown" if len(rows) > limit else "") + ")")
        if not rows:
            continue
        cols = _TABLE_COLUMNS[table]
        cells = [[_cell(c, r.get(c)) for c in cols] for r in rows[-limit:]]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        out.append("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
        for row in cells:
            out.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(out)


def journal_main(args) -> int:
    """`basisbot journal --config F [--format table|json|csv] [--out PATH]`."""
    settings = _load(args)
    if settings is None:
        return EXIT_BAD_INPUT
    fmt = getattr(args, "format", "table") or "table"
    out = getattr(args, "out", None)
    path = Path(settings.journal)
    if fmt == "csv" and out is None:
        print("error: --format csv writes one <table>.csv per table: give the folder with --out DIR", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not path.exists():
        print(no_journal_message(path), file=sys.stderr)
        empty = {t: [] for t in EXPORT_ORDER}
        if fmt == "json":
            if out is not None:
                Path(out).parent.mkdir(parents=True, exist_ok=True)
                Path(out).write_text(json.dumps(empty) + "\n", encoding="utf-8")
            else:
                print(json.dumps(empty))
        return EXIT_OK
    with JournalReader(path) as r:
        if fmt == "json":
            data = r.export("json", out)
            if out is None:
                print(json.dumps(data, default=str))
            else:
                print(f"wrote {out}", file=sys.stderr)
        elif fmt == "csv":
            r.export("csv", out)
            print(f"wrote {', '.join(f'{t}.csv' for t in EXPORT_ORDER)} into {out}", file=sys.stderr)
        else:
            print(render_tables(r.export("json"), limit=getattr(args, "limit", None) or 20))
    return EXIT_OK
