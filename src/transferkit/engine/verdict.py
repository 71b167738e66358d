"""The one tie rule of every verdict (tour, bench, advisor beside a measurement).

A candidate ties with the best when it trails by less than the tie margin: one point (``TIE_FLOOR``), or the
run-to-run spread of either of the two where that is larger (the seeds' standard deviation, or the episodes' 95%
confidence half-width). Among tied candidates the cheapest wins (fit time, parameters...), and the verdict says so.

Example:
    >>> v = decide({"features": 0.948, "finetune": 0.952}, cost={"features": 9.0, "finetune": 63.0})
    >>> v.winner, v.tied
    ('features', ['finetune', 'features'])
    >>> v.reason
    'finetune 95.2% and features 94.8% tie (0.4 points apart, under the 1-point floor); features wins on cost (9.0 s against 63.0 s)'
"""
from __future__ import annotations

from dataclasses import dataclass, field

TIE_FLOOR = 0.01  # one point of accuracy


@dataclass
class Verdict:
    """``best``: the highest score; ``tied``: every candidate tied with it (best first); ``winner``: the cheapest of
    the tied (the best when costs are not given); ``reason``: the decision in one sentence."""
    winner: str
    best: str
    tied: list[str]
    reason: str
    margins: dict = field(default_factory=dict)

    @property
    def is_tie(self) -> bool:
        return len(self.tied) > 1


def decide(scores: dict, *, spread: dict | None = None, cost: dict | None = None, cost_unit: str = "s",
           floor: float = TIE_FLOOR) -> Verdict:
    """Apply the tie rule to ``scores`` (higher is better, fractions in [0, 1]).

    Args:
        spread: candidate -> run-to-run spread of its score (seed sd or 95% CI half-width), where measured.
        cost: candidate -> what it costs (lower is better): breaks a tie.
        cost_unit: how costs are written in the reason ('s', 'parameters', ...).
        floor: the smallest difference that is not a tie (default one point).
    """
    if not scores:
        raise ValueError("decide: no scores to compare")
    spread = spread or {}
    best = max(scores, key=scores.get)
    margins = {n: max(floor, spread.get(best) or 0.0, spread.get(n) or 0.0) for n in scores}
    tied = sorted((n for n in scores if scores[best] - scores[n] < margins[n]), key=lambda n: -scores[n])
    winner = best
    if len(tied) > 1 and cost and all(cost.get(n) is not None for n in tied):
        winner = min(tied, key=lambda n: (cost[n], -scores[n]))
    return Verdict(winner, best, tied, _reason(scores, best, tied, winner, margins, cost, cost_unit, floor), margins)


def _pct(v: float) -> str:
    return f"{v:.1%}"


def _cost(v: float, unit: str) -> str:
    return f"{v:.1f} {unit}" if unit == "s" else f"{v:,.0f} {unit}"


def _reason(scores, best, tied, winner, margins, cost, unit, floor) -> str:
    if len(tied) == 1:
        others = [n for n in scores if n != best]
        if not others:
            return f"{best} {_pct(scores[best])} is the only candidate"
        second = max(others, key=scores.get)
        gap = scores[best] - scores[second]
        return (f"{best} {_pct(scores[best])} leads {second} {_pct(scores[second])} by {100 * gap:.1f} points, "
                f"beyond the tie margin ({100 * margins[second]:.1f})")
    names = " and ".join(f"{n} {_pct(scores[n])}" for n in tied)
    worst = tied[-1]
    gap = scores[best] - scores[worst]
    why = ("under the 1-point floor" if margins[worst] <= floor
           else f"inside the run-to-run spread (±{100 * margins[worst]:.1f} points)")
    text = f"{names} tie ({100 * gap:.1f} points apart, {why})"
    if winner != best:
        return text + f"; {winner} wins on cost ({_cost(cost[winner], unit)} against {_cost(cost[best], unit)})"
    if cost and all(cost.get(n) is not None for n in tied):
        return text + f"; {winner} is also the cheapest ({_cost(cost[winner], unit)})"
    return text + f"; {winner} is named for its higher score, without a cost to break the tie"
