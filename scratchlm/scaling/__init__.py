"""Scaling laws, measured (Chapter 11, chapters/ch11_scaling_laws.py): counting FLOPs, and fitting
Kaplan's power laws and Chinchilla's compute-optimal frontier to runs small enough for a CPU.

Training a model of N parameters on D tokens costs C ~ 6 N D FLOPs (2 per parameter per token
forward, 4 backward) plus the attention's own products. Three ways to read a law from runs
(N, D, C, final loss L), and the published numbers they are compared with (ANCHORS):

  Kaplan et al. 2020: L(N) = (N_c / N)^alpha_N at ample data, L(D) = (D_c / D)^alpha_D at ample size,
      each a straight line in log-log; alpha_N = 0.076, alpha_D = 0.095 (N without embeddings), and
      N_opt ∝ C^0.73: most of a growing budget should go to size.
  Hoffmann et al. 2022 (Chinchilla), approach 2: for each budget C, models of several sizes on C
      each (IsoFLOP profiles); a parabola in log N finds the best N, and N_opt ∝ C^a, D_opt ∝ C^b
      with a = 0.49, b = 0.51: size and data should grow together.
  Approach 3: L(N, D) = E + A / N^alpha + B / D^beta fitted to every run at once (a Huber loss on log
      L, L-BFGS from a grid of starts): E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28,
      a = beta / (alpha + beta) = 0.46. Besiroglu et al. 2024 refit their data with the Huber loss
      summed over runs (the published fit had averaged it, which stopped L-BFGS early):
      E = 1.82, A = 482, B = 2085, alpha = 0.35, beta = 0.37, a = 0.51.

Part of the disagreement between Kaplan and Chinchilla is what N counts: Kaplan left out the
embedding parameters, Chinchilla counted every parameter, and at small sizes the embeddings are a
large share of the model (Pearce & Song 2024), so a law is worth fitting both ways (n_params'
`embeddings`). Another part is how the runs were trained: Kaplan et al. used one learning-rate
schedule whatever the number of tokens, so the loss after fewer tokens was read off runs whose
learning rate had not yet decayed (Hoffmann et al. 2022, section 2).

One idea per module:

    flops.py       n_params, flops_breakdown, flops_per_token, training_flops; count_flops, which
                   counts the products a real forward and backward execute
    laws.py        PowerLaw, fit_power_law (Kaplan's laws; N_opt ∝ C^a); isoflop_minimum, fit_isoflop (approach 2)
    parametric.py  huber_objective, grid_starts, fit_parametric -> ParametricFit (approach 3),
                   bootstrap_parametric (its intervals, every resample in one batch)
    lbfgs.py       lbfgs: L-BFGS in NumPy from many starts at once
    bootstrap.py   bootstrap: percentile intervals from refitting resampled runs

Every fit returns an object whose `.params` is a dict of floats, which is what a bootstrap collects:

    law = fit_power_law(N, L);             ci = bootstrap(fit_power_law, (N, L))
    iso = fit_isoflop(N, D, L, C);         ci = bootstrap(fit_isoflop, (N, D, L, C), groups=C)
    fit = fit_parametric(N, D, L);         ci = bootstrap_parametric(N, D, L)
    fit.a, ci.interval("a")
"""

from scratchlm.scaling.bootstrap import Bootstrap, bootstrap
from scratchlm.scaling.flops import (FlopCount, count_flops, flops_breakdown, flops_per_token, n_params,
                                     training_flops)
from scratchlm.scaling.laws import IsoFLOPFit, PowerLaw, fit_isoflop, fit_power_law, isoflop_minimum
from scratchlm.scaling.lbfgs import LBFGSResult, lbfgs
from scratchlm.scaling.parametric import (BOOTSTRAP_GRID, DELTA, HOFFMANN_GRID, PARAMS, ParametricFit,
                                          bootstrap_parametric, fit_parametric, grid_starts, huber_objective)

# The published fits the chapter's table (§11.6) sets ours beside. Kaplan's D_opt ∝ C^0.27 is their
# batch size ∝ C^0.24 times steps ∝ C^0.03; N_c, D_c in non-embedding parameters and tokens.
ANCHORS = {
    "Kaplan et al. 2020": {"alpha_N": 0.076, "N_c": 8.8e13, "alpha_D": 0.095, "D_c": 5.4e13, "a": 0.73, "b": 0.27},
    "Hoffmann et al. 2022, approach 2": {"a": 0.49, "b": 0.51},
    "Hoffmann et al. 2022, approach 3": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28,
                                         "a": 0.46},
    "Besiroglu et al. 2024": {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.35, "beta": 0.37, "a": 0.51},
}

__all__ = ["ANCHORS", "Bootstrap", "bootstrap", "FlopCount", "count_flops", "flops_breakdown", "flops_per_token",
           "n_params", "training_flops", "IsoFLOPFit", "PowerLaw", "fit_isoflop", "fit_power_law",
           "isoflop_minimum", "LBFGSResult", "lbfgs", "BOOTSTRAP_GRID", "DELTA", "HOFFMANN_GRID", "PARAMS",
           "ParametricFit", "bootstrap_parametric", "fit_parametric", "grid_starts", "huber_objective"]
