"""edflow.tables: the mean ± std of result tables over runs (edflow report, EnD sweep, latent de-biasing table)."""
import math

import pytest

from edflow.tables import format_mean_std, mean_std


def test_sample_std_by_default():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, pytest.approx(1.0))  # sqrt(((-1)^2 + 0 + 1^2) / 2)


def test_population_std_with_ddof_0():
    mean, std = mean_std([1.0, 3.0], ddof=0)
    assert (mean, std) == (2.0, pytest.approx(1.0))


def test_one_value_gives_nan_or_the_asked_spread():
    mean, std = mean_std([4.0])
    assert mean == 4.0 and math.isnan(std)
    assert mean_std([4.0], single=0.0) == (4.0, 0.0)
    assert mean_std([4.0], ddof=0) == (4.0, 0.0)


def test_no_values_is_an_error():
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])


def test_format():
    assert format_mean_std(2.0, 0.25, digits=1) == "2.0 ± 0.2"
    assert format_mean_std(12.345, 1.0, digits=2) == "12.35 ± 1.00"


def test_format_with_significant_digits_as_edflow_report():
    assert format_mean_std(0.123456, 0.0123456, digits=3, significant=True) == "0.123 ± 0.0123"
