"""How right the categoriser is on the cases it is surest of: accuracy at each coverage level.

Cases are ordered by the categoriser's confidence, highest first. *Coverage* c keeps the
first c of them (what would be decided without a person); the rest would go to review. For
each level the table gives the accuracy on the kept cases and the confidence threshold that
keeps them (the lowest confidence among them: ``confidence >= threshold`` is kept, as
``PARLEY_INVESTIGATION_REVIEW_THRESHOLD`` sends ``confidence < threshold`` to review). The
second table reads the same data the other way: for a given threshold, the share kept, its
accuracy, and the share sent to review.

    python -m services.investigation.coverage            # dev split, markdown tables
    python -m services.investigation.coverage --csv PATH # another labelled csv (text,label)

The model is the saved artifact (trained first when missing or stale, as ``classify`` does);
the figures are in ``docs/classifier.md``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Coverage levels reported: 10 %, 20 %, ... 100 %.
LEVELS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 11))
#: Review thresholds reported.
THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class CoverageRow:
    """Accuracy on the ``cases`` most confident cases (``coverage`` of all)."""

    coverage: float
    cases: int
    threshold: float
    accuracy: float


@dataclass(frozen=True)
class ThresholdRow:
    """What a review threshold keeps (``confidence >= threshold``) and how right that part is."""

    threshold: float
    kept: int
    share_kept: float
    accuracy: float | None  # None when nothing is kept


def _ranked(confidences: Sequence[float], correct: Sequence[bool]) -> list[tuple[float, bool]]:
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} outcomes")
    if not confidences:
        raise ValueError("no cases")
    # highest confidence first; among equal confidences the wrong ones first, so a level that
    # cuts through a tie never looks better than the threshold that keeps the whole tie
    return sorted(zip(confidences, correct, strict=True), key=lambda pair: (-pair[0], pair[1]))


def coverage_table(confidences: Sequence[float], correct: Sequence[bool],
                   levels: Sequence[float] = LEVELS) -> list[CoverageRow]:
    """Accuracy at each coverage level: the ``ceil(level × n)`` most confident cases."""
    ranked = _ranked(confidences, correct)
    n, rows = len(ranked), []
    for level in levels:
        if not 0 < level <= 1:
            raise ValueError(f"coverage level {level} is not in (0, 1]")
        k = max(1, math.ceil(round(level * n, 9)))
        kept = ranked[:k]
        rows.append(CoverageRow(coverage=level, cases=k, threshold=kept[-1][0],
                                accuracy=sum(ok for _, ok in kept) / k))
    return rows


def threshold_table(confidences: Sequence[float], correct: Sequence[bool],
                    thresholds: Sequence[float] = THRESHOLDS) -> list[ThresholdRow]:
    """For each threshold: how many cases it keeps (``confidence >= threshold``) and their accuracy."""
    ranked = _ranked(confidences, correct)
    rows = []
    for t in thresholds:
        kept = [ok for conf, ok in ranked if conf >= t]
        rows.append(ThresholdRow(threshold=t, kept=len(kept), share_kept=len(kept) / len(ranked),
                                 accuracy=sum(kept) / len(kept) if kept else None))
    return rows


def markdown(coverage: Sequence[CoverageRow], thresholds: Sequence[ThresholdRow], *, source: str) -> str:
    """Both tables as markdown, as ``docs/classifier.md`` shows them."""
    n = round(coverage[-1].cases / coverage[-1].coverage) if coverage else 0
    lines = [f"Accuracy by coverage on {source} ({n} rows), most confident first:", "",
             "| coverage | cases | confidence threshold (≥) | accuracy on the covered cases | to review |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.coverage:.0%} | {r.cases} | {r.threshold:.3f} | {r.accuracy:.1%} | {1 - r.coverage:.0%} |"
              for r in coverage]
    lines += ["", f"By review threshold on {source} (below it: review):", "",
              "| threshold | decided without review | accuracy on those | to review |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {r.threshold:.2f} | {r.share_kept:.1%} ({r.kept}) | "
              f"{'—' if r.accuracy is None else f'{r.accuracy:.1%}'} | {1 - r.share_kept:.1%} |"
              for r in thresholds]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the coverage and threshold tables of the saved model on a labelled csv (dev by default)."""
    from services.investigation import classifier  # sklearn and jieba only when run

    parser = argparse.ArgumentParser(prog="python -m services.investigation.coverage",
                                     description="Accuracy of the categoriser at each coverage level.")
    parser.add_argument("--csv", type=Path, default=None,
                        help="labelled csv (text,label); default: complaints-zh/dev.csv in the shared data")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    path = args.csv or classifier.shared_data_dir() / "complaints-zh" / "dev.csv"
    if not path.exists():
        sys.stderr.write(f"no {path}\n")
        return 2
    texts, labels = classifier.read_labelled_csv(path)
    predicted = classifier.load_or_train().predict(texts)
    confidences = [conf for _, conf in predicted]
    correct = [code == classifier.CATEGORIES[label] for (code, _), label in zip(predicted, labels, strict=True)]
    source = "dev.csv" if args.csv is None else path.name
    sys.stdout.write(markdown(coverage_table(confidences, correct), threshold_table(confidences, correct),
                              source=source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
