"""Exercises of Chapter 10 on parameter-efficient fine-tuning (scratchlm/peft.py), one group of tests
per exercise, each marked exN_M. Run one exercise with `python -m pytest -m ex10_1 tests/test_exercises_ch10_peft.py`.

    10.1  LoRALinear.forward: y = x W^T + b + (alpha/r) (x A^T) B^T, B only on the adapted rows, and
          nothing added once merged; checked on numbers small enough to work out by hand
    10.3  SoftPrompt.embed: the prompt before the tokens, every row of the batch, positions 0 .. P + T - 1,
          and only the tokens (at positions P + start ..) when the KV cache already holds the prompt
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchlm.autograd import Tensor, gradcheck
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.nn import Linear
from scratchlm.peft import LoRALinear, SoftPrompt
from scratchlm.rng import manual_seed

# ---------------------------------------------------------------------------------------------
# Exercise 10.1: LoRA's forward and merge (peft.py, LoRALinear.forward)
# ---------------------------------------------------------------------------------------------

W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])   # (out 3, in 2)
b = np.array([0.0, 0.0, 1.0])
A = np.array([[1.0, 2.0]])                             # (r 1, in 2)
x = np.array([[1.0, 1.0]])
# x W^T + b = [1, 1, 3];  x A^T = 3;  alpha / r = 2;  B = [1, 0, -1]^T  ->  y = [1, 1, 3] + 6 [1, 0, -1]
WANT = np.array([[7.0, 1.0, -3.0]])


def hand_layer(rows=None) -> LoRALinear:
    base = Linear(2, 3, dtype=np.float64)
    base.weight.data[...], base.bias.data[...] = W, b
    layer = LoRALinear(base, r=1, alpha=2.0, rows=rows)
    layer.lora_A.data[...] = A
    return layer


@pytest.mark.ex10_1
def test_lora_forward_at_initialisation_is_the_base():
    layer = hand_layer()
    np.testing.assert_array_equal(layer(x).data, x @ W.T + b,
                                  err_msg="B starts at 0, so the adapted layer must give exactly x W^T + b")


@pytest.mark.ex10_1
def test_lora_forward_by_hand():
    layer = hand_layer()
    layer.lora_B.data[...] = [[1.0], [0.0], [-1.0]]
    np.testing.assert_allclose(layer(x).data, WANT, rtol=1e-12,
                               err_msg="y = x W^T + b + (alpha / r) (x A^T) B^T, with alpha / r = 2")


@pytest.mark.ex10_1
def test_lora_forward_with_rows():
    layer = hand_layer(rows=[(0, 1), (2, 3)])          # rows 0 and 2 adapted, row 1 (like k) not
    assert layer.lora_B.shape == (2, 1)
    layer.lora_B.data[...] = [[1.0], [-1.0]]           # B's rows go to output rows 0 and 2
    np.testing.assert_allclose(layer(x).data, WANT, rtol=1e-12,
                               err_msg="with rows, B's rows update only those output rows (layer.full_B() "
                                       "puts them in place); the other rows stay x W^T + b")


@pytest.mark.ex10_1
def test_lora_forward_once_merged_adds_nothing_more():
    layer = hand_layer(rows=[(0, 1), (2, 3)])
    layer.lora_B.data[...] = [[1.0], [-1.0]]
    layer.merge()
    np.testing.assert_allclose(layer.weight.data, W + [[2, 4], [0, 0], [-2, -4]], rtol=1e-12)
    np.testing.assert_allclose(layer(x).data, WANT, rtol=1e-12,
                               err_msg="after merge() W holds the update: forward must not add it again "
                                       "(layer.merged)")
    layer.unmerge()
    np.testing.assert_allclose(layer(x).data, WANT, rtol=1e-12, err_msg="after unmerge() the update is added again")


@pytest.mark.ex10_1
@pytest.mark.parametrize("rows", [None, [(0, 1), (2, 3)]])
def test_lora_forward_gradients(rows):
    layer = hand_layer(rows)
    layer.lora_B.data[...] = np.random.default_rng(0).standard_normal(layer.lora_B.shape)
    xs = Tensor(np.random.default_rng(1).standard_normal((4, 2)), requires_grad=True)
    y = layer(xs)
    y.backward(np.ones(y.shape))
    assert layer.weight.grad is None and layer.bias.grad is None, "W and b are frozen: no gradient for them"
    assert layer.lora_A.grad is not None and layer.lora_B.grad is not None, "A and B must get gradients"
    A0, B0 = layer.lora_A, layer.lora_B

    def fn(xs, A, B):
        object.__setattr__(layer, "lora_A", A)
        object.__setattr__(layer, "lora_B", B)
        return layer(xs)
    try:
        assert gradcheck(fn, [xs, A0, B0]) <= 1e-6
    finally:
        object.__setattr__(layer, "lora_A", A0)
        object.__setattr__(layer, "lora_B", B0)


# ---------------------------------------------------------------------------------------------
# Exercise 10.3: prepending a soft prompt (peft.py, SoftPrompt.embed)
# ---------------------------------------------------------------------------------------------

CONFIG = GPTConfig(vocab_size=9, block_size=8, n_layer=1, n_head=2, n_embd=4)


def prompted(config=CONFIG, n_tokens=3) -> SoftPrompt:
    manual_seed(0)
    model = SoftPrompt(GPT(config, dtype=np.float64), n_tokens, init_ids=[4, 1, 7][:n_tokens])
    model.prompt.data += np.arange(model.prompt.size).reshape(model.prompt.shape)  # not a token's row any more
    return model


@pytest.mark.ex10_3
def test_embed_puts_the_prompt_first():
    model = prompted()
    idx = np.array([[2, 5], [0, 8]])
    E, pos, P = model.base.wte.weight.data, model.base.wpe.weight.data, model.prompt.data
    x = model.embed(idx).data
    assert x.shape == (2, 3 + 2, 4), "embed at start 0 returns (B, P + T, C): the prompt, then the tokens"
    for row in range(2):
        np.testing.assert_allclose(x[row, :3], P + pos[:3], rtol=1e-12,
                                   err_msg="every row of the batch starts with the prompt, at positions 0 .. P - 1")
        np.testing.assert_allclose(x[row, 3:], E[idx[row]] + pos[3:5], rtol=1e-12,
                                   err_msg="the tokens follow at positions P .. P + T - 1")


@pytest.mark.ex10_3
def test_embed_after_the_cached_prompt_is_only_the_tokens():
    model = prompted()
    idx = np.array([[6], [3]])
    E, pos = model.base.wte.weight.data, model.base.wpe.weight.data
    x = model.embed(idx, start=2).data                 # text positions 0, 1 and the prompt are cached
    assert x.shape == (2, 1, 4), "with start > 0 the cache holds the prompt: return the tokens only"
    np.testing.assert_allclose(x[:, 0], E[[6, 3]] + pos[3 + 2], rtol=1e-12,
                               err_msg="text position start is the base's position P + start")


@pytest.mark.ex10_3
def test_embed_without_learned_positions():
    model = prompted(GPTConfig(**{**CONFIG.__dict__, "position": "rope"}), n_tokens=2)   # no wpe
    idx = np.array([[2, 5, 5]])
    x = model.embed(idx).data
    np.testing.assert_array_equal(x[0], np.concatenate([model.prompt.data, model.base.wte.weight.data[[2, 5, 5]]]))


@pytest.mark.ex10_3
def test_embed_sends_the_gradient_to_the_prompt():
    model = prompted()
    x = model.embed(np.array([[2, 5], [0, 8], [1, 1]]))
    x.backward(np.ones(x.shape))
    assert model.prompt.grad is not None, "the prompt is the one thing that trains: it needs a gradient"
    np.testing.assert_allclose(model.prompt.grad, np.full(model.prompt.shape, 3.0), rtol=1e-12,
                               err_msg="each of the 3 rows of the batch uses the prompt once: its gradient is "
                                       "their sum")
    assert model.base.wte.weight.grad is None, "the base is frozen"
