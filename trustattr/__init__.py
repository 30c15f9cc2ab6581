"""trustattr: which preference pairs made an RLHF-tuned model more or less trustworthy?

The compiled ops live under ``torch.ops.trustattr`` (typed wrappers in
:mod:`trustattr.ops`); everything else is a thin Python layer around them.
"""

from trustattr import ops
from trustattr.ops import extension_info, project, project_t, random_matrix

__version__ = "0.1.0"

__all__ = ["__version__", "extension_info", "ops", "project", "project_t", "random_matrix"]
