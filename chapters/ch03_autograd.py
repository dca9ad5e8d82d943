"""Chapter 3 — Automatic differentiation: from the chain rule to training a network.

A neural language model is trained by gradient descent, and its gradients come from reverse-mode
automatic differentiation: every operation knows its local derivative, and `backward()` multiplies
them together along the graph, from the loss back to each weight (the chain rule). This script
builds that idea up in four steps:

    3.1  the chain rule on scalars, by hand and by `Tensor.backward()`
    3.2  the same walk over arrays: a layer's gradients as matrix products
    3.3  trusting the gradients: every op checked against finite differences
    3.4  training a small MLP classifier on a 2-D data set made in code

Run:      python chapters/ch03_autograd.py [--quick]
Figures:  figures/ch03_gradcheck.png, figures/ch03_mlp.png; numbers in figures/ch03_results.json
Library:  scratchlm/autograd/ (tensor.py, functional.py, kernels.py, gradcheck.py), scratchlm/nn/,
          scratchlm/optim.py
"""

import math

import numpy as np
from matplotlib.colors import ListedColormap

import scratchlm.autograd.functional as F
from scratchlm import chapter, nn, optim, plotting
from scratchlm.autograd import Tensor, gradcheck, no_grad
from scratchlm.rng import get_rng

# Settings (a full run takes a few seconds; --quick trains for fewer steps)
POINTS_PER_CLASS = 200      # two-spirals-style data: 3 arms, 2-D inputs
N_CLASSES = 3
HIDDEN = 64                 # width of the MLP's two hidden layers
STEPS = 1500                # full-batch AdamW steps
LR = 1e-2
WEIGHT_DECAY = 1e-4

run = chapter.parse_args(__doc__)
if run.quick:
    STEPS = 150
results = {}

# %% 3.1 The chain rule on scalars
# f(a, b) = tanh(a*b + b). Name the pieces: u = a*b + b, f = tanh(u). Then
#   df/du = 1 - tanh(u)^2,  du/da = b,  du/db = a + 1,
# and the chain rule multiplies along each path: df/da = (1 - f^2) b,  df/db = (1 - f^2)(a + 1).
a = Tensor(np.float64(0.8), requires_grad=True)
b = Tensor(np.float64(-1.3), requires_grad=True)
f = (a * b + b).tanh()
f.backward()
by_hand = {"df/da": (1 - f.item() ** 2) * b.item(), "df/db": (1 - f.item() ** 2) * (a.item() + 1)}
by_autograd = {"df/da": a.grad.item(), "df/db": b.grad.item()}
for k in by_hand:
    print(f"3.1 {k}: by hand {by_hand[k]:+.12f}   by backward() {by_autograd[k]:+.12f}")
results["chain_rule"] = {"f": f.item(), "by_hand": by_hand, "by_autograd": by_autograd}

# %% 3.2 From scalars to tensors
# A layer y = tanh(X W + b) with loss L = mean(y^2). Each scalar rule becomes an array rule:
#   dL/dy = 2y / y.size,  dL/dz = dL/dy * (1 - y^2)          (elementwise, z = XW + b)
#   dL/dW = X^T dL/dz,    dL/db = sum over rows of dL/dz,    dL/dX = dL/dz W^T   (matrix products)
# The bias gradient is a sum because b was broadcast to every row: that is `unbroadcast`.
rng = get_rng()
X = Tensor(rng.normal(size=(5, 4)), requires_grad=True)
W = Tensor(rng.normal(size=(4, 3)), requires_grad=True)
bias = Tensor(rng.normal(size=3), requires_grad=True)
y = (X @ W + bias).tanh()
(y * y).mean().backward()
dz = 2 * y.data / y.size * (1 - y.data ** 2)
manual = {"X": dz @ W.data.T, "W": X.data.T @ dz, "b": dz.sum(axis=0)}
tensor_diff = {name: float(np.abs(manual[name] - t.grad).max()) for name, t in (("X", X), ("W", W), ("b", bias))}
print(f"3.2 max |by hand - backward()| over dL/dX, dL/dW, dL/db: {max(tensor_diff.values()):.1e}")
results["tensor_layer_max_abs_diff"] = tensor_diff

# %% 3.3 Gradient checking
# The analytic gradient of every op is compared with central differences,
#   dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),
# in float64 (gradcheck's docstring gives the exact error measure). One wrong sign or a missing
# broadcast sum shows up here as an error of order 1 instead of 1e-8 or less (the tolerance is 1e-6).


def leaf(*shape, low=None):
    """A float64 leaf; `low` shifts the values away from 0 for log, division and powers."""
    x = rng.normal(size=shape)
    return Tensor(np.abs(x) + low if low is not None else x, requires_grad=True)


ids = rng.integers(0, 6, size=(4, 3))
targets = rng.integers(0, 7, size=8)
mask = rng.random((3, 5)) < 0.5
CHECKS = {  # name: (function, inputs)
    "add (broadcast)": (lambda x, z: x + z, [leaf(3, 1, 4), leaf(5, 1)]),
    "sub": (lambda x, z: x - z, [leaf(3, 4), leaf(4)]),
    "mul (broadcast)": (lambda x, z: x * z, [leaf(2, 3, 4), leaf(3, 1)]),
    "div": (lambda x, z: x / z, [leaf(3, 4), leaf(3, 4, low=0.5)]),
    "pow": (lambda x, z: x ** z, [leaf(3, 4, low=0.5), leaf(4)]),
    "neg": (lambda x: -x, [leaf(6)]),
    "matmul (batched)": (lambda x, z: x @ z, [leaf(2, 3, 4, 5), leaf(3, 5, 2)]),
    "sum": (lambda x: x.sum(axis=1), [leaf(3, 4, 5)]),
    "mean": (lambda x: x.mean(axis=(0, 2), keepdims=True), [leaf(3, 4, 5)]),
    "max": (lambda x: x.max(axis=-1), [leaf(4, 6)]),
    "reshape": (lambda x: x.reshape(4, 6) * np.arange(24).reshape(4, 6), [leaf(2, 3, 4)]),
    "transpose": (lambda x: x.transpose(2, 0, 1) * np.arange(24).reshape(4, 2, 3), [leaf(2, 3, 4)]),
    "exp": (lambda x: x.exp(), [leaf(3, 4)]),
    "log": (lambda x: x.log(), [leaf(3, 4, low=0.5)]),
    "tanh": (lambda x: x.tanh(), [leaf(3, 4)]),
    "sigmoid": (lambda x: x.sigmoid(), [leaf(3, 4)]),
    "relu": (lambda x: x.relu(), [leaf(3, 4)]),
    "index (int array)": (lambda x: x[np.array([0, 2, 2, 1])], [leaf(3, 4)]),
    "softmax": (lambda x: F.softmax(x), [leaf(4, 7)]),
    "log_softmax": (lambda x: F.log_softmax(x), [leaf(4, 7)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, targets), [leaf(8, 7)]),
    "gelu (exact)": (lambda x: F.gelu(x), [leaf(3, 4)]),
    "gelu (tanh)": (lambda x: F.gelu(x, approximate="tanh"), [leaf(3, 4)]),
    "layer_norm": (lambda x, w, c: F.layer_norm(x, w, c), [leaf(4, 6), leaf(6), leaf(6)]),
    "embedding": (lambda w: F.embedding(ids, w), [leaf(6, 5)]),
    "dropout": (lambda x: F.dropout(x, 0.3, rng=np.random.default_rng(1)), [leaf(4, 5)]),
    "where": (lambda x, z: F.where(mask, x, z), [leaf(3, 5), leaf(3, 5)]),
    "masked_fill": (lambda x: F.masked_fill(x, mask, -1e9), [leaf(3, 5)]),
    "concatenate": (lambda x, z: F.concatenate([x, z], axis=1), [leaf(3, 2), leaf(3, 4)]),
    "stack": (lambda x, z: F.stack([x, z], axis=0), [leaf(3, 4), leaf(3, 4)]),
}
gradcheck_errors = {name: gradcheck(fn, inputs) for name, (fn, inputs) in CHECKS.items()}
worst = max(gradcheck_errors, key=gradcheck_errors.get)
print(f"3.3 gradcheck: {len(CHECKS)} ops, worst relative error {gradcheck_errors[worst]:.1e} ({worst})")
results["gradcheck_max_relative_error"] = gradcheck_errors

fig, ax = plotting.figure(width=7, height=5.5)
names = list(gradcheck_errors)
ax.barh(names, [max(gradcheck_errors[n], 1e-17) for n in names], color=plotting.COLORS[0])
ax.axvline(1e-6, color=plotting.COLORS[1], ls="--", label="tolerance 1e-6")
ax.set_xscale("log")
ax.invert_yaxis()
ax.set_xlabel("max relative error, backward() vs central differences (float64)")
ax.set_title("Every op's gradient, checked numerically")
ax.legend(loc="lower right")
plotting.save(fig, run.out, "ch03_gradcheck")

# %% 3.4 Training an MLP
# Three interleaved spiral arms in the plane: not linearly separable, so the network has to bend
# its decision boundary. Model: Linear(2, H) -> tanh -> Linear(H, H) -> tanh -> Linear(H, 3), trained
# on the mean cross-entropy with AdamW, all points at once (full batch). The loss of point i, with
# logits z_i and target t_i, is l_i = logsumexp(z_i) - z_i[t_i], with dl_i/dz_i = softmax(z_i) -
# onehot(t_i); the mean L = (1/N) sum_i l_i divides that by N. Each point pulls its target's logit up
# and the others down, by their probabilities.


def spirals(n_per_class: int, n_classes: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """`n_classes` noisy spiral arms, radius 0..1, each turning one and a half times; float32 points, int labels."""
    r = np.tile(np.linspace(0.05, 1.0, n_per_class), n_classes)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    angle = labels * (2 * math.pi / n_classes) + r * 3 * math.pi + rng.normal(0, 0.2, size=r.size)
    points = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1).astype(np.float32)
    return points, labels


points, labels = spirals(POINTS_PER_CLASS, N_CLASSES, rng)
order = rng.permutation(len(labels))
n_train = int(0.8 * len(labels))
train_idx, test_idx = order[:n_train], order[n_train:]

model = nn.Sequential(nn.Linear(2, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                      nn.Linear(HIDDEN, N_CLASSES))
opt = optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
x_train, y_train = Tensor(points[train_idx]), labels[train_idx]
losses = []
for step in range(STEPS):
    loss = F.cross_entropy(model(x_train), y_train)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())


def accuracy(idx: np.ndarray) -> float:
    with no_grad():
        return float((model(Tensor(points[idx])).data.argmax(axis=1) == labels[idx]).mean())


train_acc, test_acc = accuracy(train_idx), accuracy(test_idx)
print(f"3.4 MLP ({sum(p.size for p in model.parameters())} parameters, {STEPS} steps): "
      f"initial loss {losses[0]:.3f} (ln 3 = {math.log(3):.3f}), final loss {losses[-1]:.4f}, "
      f"train accuracy {train_acc:.3f}, test accuracy {test_acc:.3f}")
results["mlp"] = {"hidden": HIDDEN, "steps": STEPS, "initial_loss": losses[0], "final_loss": losses[-1],
                  "train_accuracy": train_acc, "test_accuracy": test_acc,
                  "parameters": int(sum(p.size for p in model.parameters()))}

fig, (ax_loss, ax_map) = plotting.figure(1, 2, width=5.5, height=4.5)
ax_loss.plot(losses)
ax_loss.set_yscale("log")
ax_loss.set_xlabel("step")
ax_loss.set_ylabel("training cross-entropy (nats)")
ax_loss.set_title("Loss")
grid = np.linspace(-1.2, 1.2, 300, dtype=np.float32)
gx, gy = np.meshgrid(grid, grid)
with no_grad():
    region = model(Tensor(np.stack([gx.ravel(), gy.ravel()], axis=1))).data.argmax(axis=1)
cmap = ListedColormap(plotting.COLORS[:N_CLASSES])
ax_map.contourf(gx, gy, region.reshape(gx.shape), levels=np.arange(N_CLASSES + 1) - 0.5, cmap=cmap, alpha=0.25)
for k in range(N_CLASSES):
    ax_map.scatter(*points[labels == k].T, s=8, color=plotting.COLORS[k], label=f"class {k}")
ax_map.set_aspect("equal")
ax_map.set_title(f"Decision regions (test accuracy {test_acc:.1%})")
ax_map.legend(loc="upper right", fontsize=8)
plotting.save(fig, run.out, "ch03_mlp")

chapter.write_results(run, "ch03_results", results)
