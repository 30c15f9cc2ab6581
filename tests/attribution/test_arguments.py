"""ScoreArguments refuses combinations that would silently score something else than asked."""

from __future__ import annotations

import pytest

from trustattr.attribution.arguments import ScoreArguments


@pytest.mark.parametrize("method", ["tracin", "less"])
def test_checkpoint_methods_refuse_to_run_without_checkpoints(method):
    with pytest.raises(ValueError, match=f"`method` {method} needs `checkpoints`"):
        ScoreArguments.from_preset("tiny", method=method)


def test_checkpoints_and_an_explicit_policy_are_refused():
    with pytest.raises(ValueError, match="`checkpoints` and `policy` both name the models"):
        ScoreArguments.from_preset("tiny", method="tracin", checkpoints="ckpts")  # tiny's policy is 'tiny'
    args = ScoreArguments.from_preset("tiny", method="tracin", checkpoints="ckpts", policy="auto")
    assert args.checkpoints == "ckpts"


def test_damping_must_be_positive_and_normalize_is_an_argument():
    with pytest.raises(ValueError, match="`damping` must be > 0"):
        ScoreArguments.from_preset("tiny", damping=0.0)
    assert ScoreArguments.from_preset("tiny", normalize=True).to_dict()["normalize"] is True
