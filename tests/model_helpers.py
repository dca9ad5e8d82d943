"""What the models' parity tests share (`from model_helpers import perturbed_gpt, rel, assert_same_as_torch`):
a GPT whose every weight is off its initial value, and the comparison of a model's logits, loss and
parameter gradients with its PyTorch twin's."""

import numpy as np

from scratchlm.models.gpt import GPT
from scratchlm.rng import manual_seed


def perturbed_gpt(config, dtype=np.float64, seed: int = 0) -> GPT:
    """A GPT of `config` with N(0, 0.1) added to every weight, so that no gradient is tested at a
    special value (norm gains 1, biases 0, a zero-initialised head)."""
    manual_seed(seed)
    model = GPT(config, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    for p in model.parameters():
        p.data += rng.normal(0, 0.1, p.shape).astype(dtype)
    return model


def rel(a, b) -> float:
    """Largest difference relative to the largest entry of b."""
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def assert_same_as_torch(logits, loss, model, t_logits, t_loss, t_params, rtol: float = 1e-6) -> None:
    """Logits, loss and every parameter's gradient of `model` equal its twin's (t_params: name -> torch
    tensor) to rtol, after both backward passes."""
    assert rel(logits.data, t_logits.detach().numpy()) < rtol
    assert abs(loss.item() - t_loss.item()) < rtol * abs(t_loss.item())
    for name, p in model.named_parameters():
        assert rel(p.grad, t_params[name].grad.numpy()) < rtol, name
