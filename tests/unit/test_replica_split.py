"""Weight by pod ratio: the closest achievable split, and the weight it really gives."""

import pytest

from modeldeploy.routing.replicas import ReplicaSplit, split_replicas

pytestmark = pytest.mark.canary


@pytest.mark.parametrize(
    "total,weight,stable,canary,achieved",
    [
        (4, 0, 4, 0, 0),
        (4, 20, 3, 1, 25),    # 0.8 pods rounds to 1
        (4, 50, 2, 2, 50),
        (4, 60, 2, 2, 50),    # 2.4 pods rounds to 2
        (4, 100, 0, 4, 100),
        (10, 20, 8, 2, 20),
        (10, 5, 9, 1, 10),    # 0.5 rounds half up to 1
        (3, 1, 2, 1, 33),     # any weight above 0 gets a canary pod
        (3, 99, 1, 2, 67),    # any weight below 100 keeps a stable pod
        (2, 90, 1, 1, 50),
        (1, 30, 1, 0, 0),     # one pod: the closest split to 30% is none
        (1, 70, 0, 1, 100),
    ],
)
def test_closest_split_and_honest_weight(total, weight, stable, canary, achieved):
    split = split_replicas(total, weight)
    assert (split.stable, split.canary, split.weight) == (stable, canary, achieved)
    assert split.stable + split.canary == total


def test_weight_of_an_empty_split_is_zero():
    assert ReplicaSplit(0, 0).weight == 0


@pytest.mark.parametrize("total,weight", [(0, 10), (3, -1), (3, 101)])
def test_out_of_range(total, weight):
    with pytest.raises(ValueError):
        split_replicas(total, weight)
