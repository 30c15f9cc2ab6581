"""The README's "torch.ops.trustattr on your own model" example runs, and its sketches are the real ones."""

from __future__ import annotations

import torch

# Kept identical to the README section "Attribution on your own model with torch.ops.trustattr".
EXAMPLE = '''
import torch
from torch import nn
import trustattr  # loads the compiled ops: torch.ops.trustattr.*

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))  # your own model
x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))                   # 8 training examples
K, SEED = 8, 0
layers = [model[0], model[2]]
features = {}

def track(index, layer):
    def on_forward(module, inputs, output):
        a = inputs[0].detach()[:, None, :]                      # [N, T=1, d_in] layer input
        def on_backward(g):                                     # [N, d_out] output gradient
            features[index] = torch.ops.trustattr.project_factored(
                a, g[:, None, :].contiguous(), K, K, trustattr.ops.derive_seed(SEED, index))  # [N, K*K]
        output.register_hook(on_backward)
    return layer.register_forward_hook(on_forward)

handles = [track(i, layer) for i, layer in enumerate(layers)]
# per-example losses SUMMED: one backward gives every example its own gradient sketch
nn.functional.cross_entropy(model(x), y, reduction="none").sum().backward()
for h in handles:
    h.remove()
train = torch.cat([features[0], features[1]], dim=1)            # [8, 2*K*K], never a full gradient

query = train[:2].mean(0)                                        # e.g. the mean test gradient
influence = torch.ops.trustattr.datainf_scores(train, query, None, [0, K * K, 2 * K * K])  # [8]
values, rows = torch.ops.trustattr.topk_score(train, query[None], 3)  # 3 most aligned examples
print(influence, rows)
'''


def test_readme_example_runs_and_sketches_the_true_gradients():
    scope: dict = {}
    exec(EXAMPLE, scope)
    model, x, y, train = scope["model"], scope["x"], scope["y"], scope["train"]
    from trustattr import ops, reference

    # brute force: each example's own weight gradient, projected with materialized matrices
    want = []
    for i in range(len(x)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        row = []
        for index, layer in enumerate(scope["layers"]):
            seed = ops.derive_seed(0, index)
            r_in = reference.random_matrix(layer.in_features, 8, ops.derive_seed(seed, 0))
            r_out = reference.random_matrix(layer.out_features, 8, ops.derive_seed(seed, 1))
            row.append((r_out.T @ layer.weight.grad @ r_in).flatten())
        want.append(torch.cat(row))
    torch.testing.assert_close(train, torch.stack(want), rtol=1e-4, atol=1e-6)
    assert scope["influence"].shape == (8,) and torch.isfinite(scope["influence"]).all()
    assert scope["rows"].shape == (1, 3)


def test_the_readme_shows_exactly_this_example():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert EXAMPLE.strip() in readme
