"""The weekly summary's picture: NPS per week with its margin as a band, over the mix of promoters,
passives and critics as stacked bars, as a PNG that stays readable on a phone.

matplotlib with the Agg backend: no screen, no GUI toolkit, the same picture on every machine. The
figure is built with the object API (``Figure`` on its own ``FigureCanvasAgg``, not ``pyplot``), so no
global backend is switched and two summaries can be drawn at once.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from surveys.report_figures import WeekNps

PROMOTER_COLOUR = "#2e7d32"
PASSIVE_COLOUR = "#f9a825"
CRITIC_COLOUR = "#c62828"
NPS_COLOUR = "#1a237e"
_SIZE_INCHES = (8.0, 6.0)
_DPI = 150  # 1200 × 900 pixels: sharp on a phone, a few dozen kilobytes


@dataclass(frozen=True, slots=True)
class ChartLabels:
    """The words on the chart, in the manager's language (plain text: the chart is no HTML)."""

    title: str = "NPS per week"
    nps: str = "NPS"
    margin: str = "95 % margin"
    promoters: str = "Promoters"
    passives: str = "Passives"
    critics: str = "Critics"
    mix: str = "Share of answers"
    no_answers: str = "no answers"


def nps_chart(weeks: Sequence[WeekNps], labels: ChartLabels | None = None) -> bytes:
    """Draw the weeks (oldest first) and return the PNG. A week without answers has no point and no bar,
    and says so under its date, instead of a 0 that would read as a score."""
    if not weeks:
        raise ValueError("a chart needs at least one week")
    words = labels or ChartLabels()
    figure = Figure(figsize=_SIZE_INCHES, dpi=_DPI, layout="constrained")
    score_axes, mix_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    positions = list(range(len(weeks)))
    ticks = [week.period.first_day.strftime("%d.%m.") for week in weeks]

    # A week without answers is a gap in the line (NaN), not a point at 0.
    scores = [week.counts.nps if week.counts.nps is not None else math.nan for week in weeks]
    margins = [week.counts.margin or 0.0 for week in weeks]
    score_axes.fill_between(
        positions,
        [s - m for s, m in zip(scores, margins, strict=True)],
        [s + m for s, m in zip(scores, margins, strict=True)],
        color=NPS_COLOUR,
        alpha=0.15,
        linewidth=0,
        label=words.margin,
    )
    score_axes.plot(positions, scores, color=NPS_COLOUR, marker="o", linewidth=2.5, label=words.nps)
    for x, score in zip(positions, scores, strict=True):
        if not math.isnan(score):
            score_axes.annotate(
                f"{score:+.0f}", (x, score), textcoords="offset points", xytext=(0, 8), ha="center"
            )
    score_axes.axhline(0, color="#9e9e9e", linewidth=0.8)
    score_axes.set_ylim(-100, 100)
    score_axes.set_title(words.title, fontsize=16, loc="left")
    score_axes.legend(loc="lower left", fontsize=10, frameon=False)
    score_axes.grid(axis="y", alpha=0.3)

    shares = [_shares(week) for week in weeks]
    critics = [share[2] for share in shares]
    passives = [share[1] for share in shares]
    promoters = [share[0] for share in shares]
    mix_axes.bar(positions, critics, color=CRITIC_COLOUR, label=words.critics)
    mix_axes.bar(positions, passives, bottom=critics, color=PASSIVE_COLOUR, label=words.passives)
    bottoms = [c + p for c, p in zip(critics, passives, strict=True)]
    mix_axes.bar(positions, promoters, bottom=bottoms, color=PROMOTER_COLOUR, label=words.promoters)
    mix_axes.set_ylim(0, 100)
    mix_axes.set_ylabel(words.mix + " (%)")
    mix_axes.legend(loc="upper left", bbox_to_anchor=(0, -0.25), ncols=3, fontsize=10, frameon=False)
    mix_axes.set_xticks(
        positions,
        [t if w.counts.total else f"{t}\n{words.no_answers}" for t, w in zip(ticks, weeks, strict=True)],
        fontsize=9,
    )
    for axes in (score_axes, mix_axes):
        axes.tick_params(labelsize=10)
        axes.spines[["top", "right"]].set_visible(False)

    buffer = io.BytesIO()
    FigureCanvasAgg(figure)  # the figure draws with Agg from now on
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _shares(week: WeekNps) -> tuple[float, float, float]:
    """Promoters, passives and critics in per cent of the week's answers (zeros for none)."""
    total = week.counts.total
    if total == 0:
        return 0.0, 0.0, 0.0
    counts = week.counts
    return (100 * counts.promoters / total, 100 * counts.passives / total, 100 * counts.critics / total)
