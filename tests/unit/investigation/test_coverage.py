"""The coverage computation behind docs/classifier.md, on a small example worked by hand."""

from __future__ import annotations

import pytest

from services.investigation.coverage import coverage_table, markdown, threshold_table

# ten cases; two share the confidence 0.8 (one right, one wrong); five are right in all
CONFIDENCES = [0.6, 0.95, 0.1, 0.8, 0.5, 0.9, 0.3, 0.8, 0.4, 0.2]
CORRECT = [True, True, False, True, False, True, False, False, True, False]
# most confident first: 0.95 ✓, 0.9 ✓, 0.8 ✗, 0.8 ✓, 0.6 ✓, 0.5 ✗, 0.4 ✓, 0.3 ✗, 0.2 ✗, 0.1 ✗


def test_accuracy_at_each_coverage_level_counts_the_most_confident_cases() -> None:
    rows = coverage_table(CONFIDENCES, CORRECT)
    assert [(r.coverage, r.cases, r.threshold) for r in rows[:5]] == [
        (0.1, 1, 0.95), (0.2, 2, 0.9), (0.3, 3, 0.8), (0.4, 4, 0.8), (0.5, 5, 0.6)]
    assert [r.accuracy for r in rows] == pytest.approx(
        [1, 1, 2 / 3, 3 / 4, 4 / 5, 4 / 6, 5 / 7, 5 / 8, 5 / 9, 5 / 10])
    # a level cutting through a tie counts the wrong one of the tie first: never flattering
    assert rows[2].accuracy == pytest.approx(2 / 3)
    # an odd count: 25 % of 10 is 2.5 cases → the 3 most confident
    [quarter] = coverage_table(CONFIDENCES, CORRECT, levels=[0.25])
    assert quarter.cases == 3


def test_a_threshold_keeps_every_case_at_or_above_it() -> None:
    rows = {r.threshold: r for r in threshold_table(CONFIDENCES, CORRECT, thresholds=[0.8, 0.5, 0.99, 0.0])}
    assert (rows[0.8].kept, rows[0.8].share_kept, rows[0.8].accuracy) == (4, 0.4, 0.75)  # the whole tie
    assert (rows[0.5].kept, rows[0.5].accuracy) == (6, pytest.approx(4 / 6))
    assert (rows[0.99].kept, rows[0.99].accuracy) == (0, None)
    assert (rows[0.0].kept, rows[0.0].accuracy) == (10, 0.5)


def test_the_markdown_shows_both_tables() -> None:
    text = markdown(coverage_table(CONFIDENCES, CORRECT), threshold_table(CONFIDENCES, CORRECT, [0.8, 0.99]),
                    source="example")
    assert "on example (10 rows)" in text
    assert "| 50% | 5 | 0.600 | 80.0% | 50% |" in text
    assert "| 0.80 | 40.0% (4) | 75.0% | 60.0% |" in text and "| 0.99 | 0.0% (0) | — | 100.0% |" in text


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2 confidences but 1 outcomes"):
        coverage_table([0.5, 0.6], [True])
    with pytest.raises(ValueError, match="no cases"):
        threshold_table([], [])
    with pytest.raises(ValueError, match="not in"):
        coverage_table([0.5], [True], levels=[0])
