"""The CI gate's bounds, at their edges: reaching a bound exactly passes, missing it by any amount fails.

The figures are binary fractions (0.75 - 0.5 is exactly 0.25 in floating point), so "equal" means equal."""

import pytest

from zsa_eval.report.gate import gate_failures


def test_a_drop_equal_to_max_drop_passes():
    assert gate_failures(0.5, None, baseline_accuracy=0.75, max_drop=0.25) == []


def test_a_drop_above_max_drop_fails_and_says_by_how_much():
    assert gate_failures(0.5, None, baseline_accuracy=0.75, max_drop=0.125) == [
        "accuracy 0.5000 dropped 0.2500 below the baseline's 0.7500, more than gate.max_drop=0.125"]


def test_an_accuracy_equal_to_the_baseline_passes_with_no_drop_allowed():
    assert gate_failures(0.75, None, baseline_accuracy=0.75, max_drop=0.0) == []
    assert gate_failures(0.875, None, baseline_accuracy=0.75, max_drop=0.0) == []  # better is never a failure


def test_an_accuracy_equal_to_min_accuracy_passes():
    assert gate_failures(0.75, min_accuracy=0.75, baseline_accuracy=None, max_drop=0.0) == []
    assert gate_failures(0.5, min_accuracy=0.75, baseline_accuracy=None, max_drop=0.0) == [
        "accuracy 0.5000 is below gate.min_accuracy=0.75 by 0.2500"]


def test_both_bounds_are_reported_and_none_without_bounds():
    assert len(gate_failures(0.25, min_accuracy=0.5, baseline_accuracy=0.75, max_drop=0.25)) == 2
    assert gate_failures(0.0, None, None, 0.0) == []


@pytest.mark.parametrize("baseline, accuracy, max_drop, passes", [
    (0.75, 0.5, 0.25, True), (0.75, 0.5, 0.2499, False), (1.0, 0.0, 1.0, True), (0.5, 0.4375, 0.0625, True),
])
def test_drop_boundary_table(baseline, accuracy, max_drop, passes):
    assert (gate_failures(accuracy, None, baseline, max_drop) == []) is passes
