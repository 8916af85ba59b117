"""EMA of the weights: the average torch's AveragedModel keeps, checked by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tlf.config import RunConfig
from tlf.engine.ema import WeightEma
from tlf.errors import TlfError


def test_ema_equals_the_hand_computed_average_after_three_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    ema = WeightEma(model, decay=0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    snapshots = []
    for _ in range(3):
        model(torch.randn(8, 4)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        ema.update(model)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
    for key, value in ema.model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        expected = snapshots[0][key]  # the first update copies the weights
        for later in snapshots[1:]:
            expected = 0.9 * expected + 0.1 * later[key]
        torch.testing.assert_close(value, expected, msg=key)
    assert not torch.equal(ema.model[0].weight, model[0].weight)
    restored = WeightEma(model, decay=0.9)
    restored.load_state_dict(ema.state_dict())
    torch.testing.assert_close(restored.model[0].weight, ema.model[0].weight)


@pytest.mark.parametrize("decay", [1.5, 1.0, 0.0, -0.1])
def test_ema_decay_out_of_range_is_an_error(decay):
    with pytest.raises(TlfError, match=r"ema must be above 0 and below 1"):
        RunConfig(ema=decay).checked()
