"""Risk limits (`[risk]`) as a nautilus actor, shared by backtest, paper and live (the rules: `basisbot.core.risk`).

- Equity (both accounts at market, the perps' unrealised PnL at the mark) is evaluated on the perps' mark prices, at
  most once per `check_interval_s` of the node's clock. A new breach of the daily loss or the drawdown limit is
  journaled with its figures (`JournalRecord` kind "risk"), logged as an error, kept in `breaches` (backtests list
  them in summary.json) and acted on: a `ControlCommand` (pause or flatten, every symbol, origin "risk") on
  `CONTROL_TOPIC`, which the strategies apply like an operator's command. It stays latched until a `resume` of every
  symbol (not one sent by this actor), which re-arms the limits from the equity of that moment.
- `RISK_ENDPOINT`: a strategy asks before a new entry (`EntryCheck`); refused beyond `max_gross_notional_usdt` (both
  legs of every carry at market, the entries let through and not filled yet, plus the new one) or when the symbol's
  last mark is older than `stale_data_s`.
"""

from __future__ import annotations

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.enums import PriceType
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.objects import Currency

from basisbot.core import risk
from basisbot.nautilus.messages import (
    CONTROL_TOPIC,
    JOURNAL_TOPIC,
    RISK_ENDPOINT,
    ControlCommand,
    EntryCheck,
    JournalRecord,
)

USDT = Currency.from_str("USDT")
ENTRY_RESERVE_NS = 60 * 1_000_000_000  # an entry let through counts this long before its fills (or its failure)


class RiskActorConfig(ActorConfig, frozen=True):
    # the `[risk]` table (basisbot.config.risk.RiskSettings.model_dump())
    limits: dict = {}
    # carry symbol -> [spot instrument id, perp instrument id]
    instruments: dict[str, list[str]] = {}
    venues: list[str] = []  # spot and perp venue names (their accounts make the equity)
    check_interval_s: float = 1.0
    journal: bool = True  # publish JournalRecords (a backtest, which has no journal, says False)


def account_equity(portfolio, cache, venues: list[str]) -> float | None:
    """USDT of the venues' accounts, the spot assets at their last prices and the perps' unrealised PnL at the mark
    (None while an account is not there yet)."""
    total = 0.0
    for v in venues:
        venue = Venue(v)
        acct = portfolio.account(venue)
        if acct is None:
            return None
        bal = acct.balance_total(USDT)
        total += bal.as_double() if bal is not None else 0.0
        if acct.is_cash_account:
            for money in (portfolio.net_exposures(venue) or {}).values():
                if money.currency == USDT:
                    total += money.as_double()
        else:
            for pos in cache.positions_open(venue):
                mp = cache.mark_price(pos.instrument_id)
                px = mp.value.as_double() if mp is not None else pos.avg_px_open
                total += pos.signed_qty * (px - pos.avg_px_open)
    return total


class RiskActor(Actor):
    def __init__(self, config: RiskActorConfig):
        super().__init__(config)
        lim = config.limits
        self.book = risk.RiskBook(risk.Limits(
            max_daily_loss_usdt=lim.get("max_daily_loss_usdt"), max_drawdown_pct=lim.get("max_drawdown_pct"),
            max_gross_notional_usdt=lim.get("max_gross_notional_usdt"), stale_data_s=lim.get("stale_data_s"),
            action=lim.get("action", "pause")))
        self._ids = {s: (InstrumentId.from_str(a), InstrumentId.from_str(b)) for s, (a, b) in config.instruments.items()}
        self._perp_symbol = {perp: s for s, (_, perp) in self._ids.items()}
        self._interval_ns = int(config.check_interval_s * 1e9)
        self._next_check_ns = 0
        self.last_mark_ns: dict[str, int] = {}
        self.breaches: list[risk.Breach] = []
        self.refusals: dict[str, int] = {}  # entries refused, per limit kind
        self.last_equity: float | None = None
        # entries let through and not yet in the positions: {symbol: (notional, ts)}, counted in the gross notional
        # so that two symbols asking at the same moment cannot both pass a cap only one fits under
        self._entering: dict[str, tuple[float, int]] = {}

    def on_start(self) -> None:
        self.msgbus.register(RISK_ENDPOINT, self._on_entry_check)
        self.msgbus.subscribe(CONTROL_TOPIC, self._on_control)
        for _, perp in self._ids.values():
            self.subscribe_mark_prices(perp)

    def on_stop(self) -> None:
        if RISK_ENDPOINT in self.msgbus.endpoints():
            self.msgbus.deregister(RISK_ENDPOINT, self._on_entry_check)
        if self.msgbus.is_subscribed(CONTROL_TOPIC, self._on_control):
            self.msgbus.unsubscribe(CONTROL_TOPIC, self._on_control)

    # -- marks: staleness and the equity ------------------------------------------------------------------------------
    def on_mark_price(self, update) -> None:
        sym = self._perp_symbol.get(update.instrument_id)
        now = self.clock.timestamp_ns()
        if sym is not None:
            self.last_mark_ns[sym] = now
        if now >= self._next_check_ns:
            self._next_check_ns = now + self._interval_ns
            self.evaluate(now)

    def evaluate(self, now: int) -> list[risk.Breach]:
        equity = account_equity(self.portfolio, self.cache, self.config.venues)
        if equity is None:
            return []
        self.last_equity = equity
        new = self.book.on_equity(now, equity)
        for b in new:
            self.breaches.append(b)
            text = b.describe()
            self.log.error(f"RISK LIMIT BREACHED: {text}")
            self._journal("risk", now, limit=b.limit, value=b.value, threshold=b.threshold, equity=b.equity,
                          reference=b.reference, action=b.action, detail=text)
            self.msgbus.publish(CONTROL_TOPIC, ControlCommand(b.action, (), "risk", text, now))
        return new

    # -- entries ------------------------------------------------------------------------------------------------------
    def _spot_price(self, spot: InstrumentId, perp: InstrumentId) -> float | None:
        for pt in (PriceType.MID, PriceType.LAST):
            try:
                px = self.cache.price(spot, pt)
            except Exception:  # an instrument without that price type
                px = None
            if px is not None:
                return px.as_double()
        bars = [b for b in self.cache.bar_types(instrument_id=spot)]
        bar = self.cache.bar(bars[0]) if bars else None
        if bar is not None:
            return bar.close.as_double()
        mp = self.cache.mark_price(perp)
        return mp.value.as_double() if mp is not None else None

    def gross_notional(self, now: int) -> float:
        legs = []
        for sym, (spot, perp) in self._ids.items():
            sq, pq = float(self.portfolio.net_position(spot)), float(self.portfolio.net_position(perp))
            if sq == 0 and pq == 0:
                entering = self._entering.get(sym)
                if entering is not None and now - entering[1] < ENTRY_RESERVE_NS:
                    legs.append((1.0, entering[0], 0.0, 0.0))
                continue
            self._entering.pop(sym, None)
            mp = self.cache.mark_price(perp)
            mark = mp.value.as_double() if mp is not None else 0.0
            legs.append((sq, self._spot_price(spot, perp) or mark, pq, mark))
        return risk.gross_notional(legs)

    def _on_entry_check(self, req: EntryCheck) -> None:
        now = self.clock.timestamp_ns()
        why = self.book.stale(now, self.last_mark_ns.get(req.symbol))
        kind = "stale_data_s"
        if why is None:
            why, kind = self.book.entry_refusal(self.gross_notional(now), req.notional_usdt), "max_gross_notional_usdt"
        if why is not None:
            self.refusals[kind] = self.refusals.get(kind, 0) + 1
        else:
            self._entering[req.symbol] = (req.notional_usdt, now)
        req.reply(why)

    # -- the operator's resume re-arms the limits ---------------------------------------------------------------------
    def _on_control(self, cmd) -> None:
        if not isinstance(cmd, ControlCommand) or cmd.command != "resume" or cmd.symbols or cmd.origin == "risk":
            return
        now = self.clock.timestamp_ns()
        equity = account_equity(self.portfolio, self.cache, self.config.venues)
        for b in self.book.rearm(now, equity):
            text = f"{b.limit} breach cleared by resume from {cmd.origin}; limits count from equity {equity or 0:.2f}"
            self.log.warning(f"risk: {text}")
            self._journal("risk", now, limit=b.limit, value=b.value, threshold=b.threshold,
                          equity=equity if equity is not None else b.equity, reference=b.reference, action="cleared",
                          detail=text)

    def _journal(self, kind: str, ts: int, **data) -> None:
        if self.config.journal:
            self.msgbus.publish(JOURNAL_TOPIC, JournalRecord(kind, "", ts, data))


def risk_actor_config(risk_settings, instruments: dict[str, tuple[str, str]], venues: list[str], *,
                      journal: bool = True) -> RiskActorConfig:
    return RiskActorConfig(component_id="RiskActor", limits=risk_settings.model_dump(),
                           instruments={s: [str(a), str(b)] for s, (a, b) in instruments.items()},
                           venues=list(venues), check_interval_s=risk_settings.check_interval_s, journal=journal)


__all__ = ["RiskActor", "RiskActorConfig", "account_equity", "risk_actor_config"]
