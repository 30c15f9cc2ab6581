"""The attribution engine: which training preference pairs moved each trust benchmark.

Composed of capture (hooks, :mod:`.capture`) -> projection (:mod:`.projector`, compiled ops) -> feature store
(:mod:`.store`) -> scoring (:mod:`.methods`), held together by :class:`Attributor`; :func:`score` runs the
whole ``trustattr score`` job from :class:`ScoreArguments`.

    from trustattr.attribution import ScoreArguments, score
    result = score(ScoreArguments.from_preset("tiny", out="runs/score-tiny"))
    result.trust            # [pairs, benchmarks]: > 0 = the pair made the model more trustworthy
"""

from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.attributor import Attributor, NonFiniteLossError, reference_logprobs
from trustattr.attribution.capture import GradientCapture
from trustattr.attribution.losses import DPOLoss, RewardLoss, SFTLoss, make_loss, sequence_logprobs
from trustattr.attribution.methods import FeatureSet, get_method, sign_normalize
from trustattr.attribution.modules import select_modules
from trustattr.attribution.pipeline import ScoreResult, score
from trustattr.attribution.projector import Projector
from trustattr.attribution.store import FeatureStore

__all__ = [
    "Attributor",
    "DPOLoss",
    "FeatureSet",
    "FeatureStore",
    "GradientCapture",
    "NonFiniteLossError",
    "Projector",
    "RewardLoss",
    "SFTLoss",
    "ScoreArguments",
    "ScoreResult",
    "get_method",
    "make_loss",
    "reference_logprobs",
    "score",
    "select_modules",
    "sequence_logprobs",
    "sign_normalize",
]
