"""Expectations from counts: bit order, the mean, its standard error, and how estimates combine."""

from __future__ import annotations

import math

import pytest

from flows.examples.estimate import Estimate, bits_of, mean_of, z_string


def test_a_counts_key_is_read_with_bit_zero_rightmost_as_qiskit_writes_it() -> None:
    assert bits_of("110") == (0, 1, 1)
    assert z_string(bits_of("110"), [0]) == 1
    assert z_string(bits_of("110"), [1]) == -1
    assert z_string(bits_of("110"), [1, 2]) == 1


@pytest.mark.parametrize("key", ["", "01 10", "012"])
def test_a_key_that_is_not_one_register_of_bits_is_refused(key: str) -> None:
    with pytest.raises(ValueError):
        bits_of(key)


def test_the_mean_and_its_standard_error_are_the_sample_ones() -> None:
    estimate = mean_of({"0": 3, "1": 1}, lambda bits: bits[0])
    # mean 1/4; sample variance (3 * 1/16 + 9/16) / 3 = 1/4; stderr sqrt(1/4 / 4).
    assert estimate == Estimate(0.25, 0.25)


def test_a_certain_outcome_has_no_error_and_one_shot_has_no_estimate_of_it() -> None:
    assert mean_of({"1": 100}, lambda bits: 2.0 * bits[0]) == Estimate(2.0, 0.0)
    with pytest.raises(ValueError, match="2 shots"):
        mean_of({"1": 1}, lambda bits: bits[0])


def test_independent_estimates_add_their_variances() -> None:
    total = Estimate(1.0, 0.3) + Estimate(2.0, 0.4)
    assert total.value == 3.0 and total.stderr == pytest.approx(0.5)
    assert total.shifted(-1.0) == Estimate(2.0, total.stderr)
    assert math.isclose(total.stderr, math.hypot(0.3, 0.4))
