"""The two coins of Do & Batzoglou (2008), the smallest mixture model there is.

Two coins A and B of unknown biases θ_A and θ_B; five times, one of them is picked at random
(we are not told which) and tossed ten times. The heads counted in the five sets are 5, 9, 8,
4 and 7. EM alternates between guessing, for each set, how likely it is to come from A or B
(the E-step) and re-estimating the biases from those soft assignments (the M-step).

Each set is a binomial count of heads out of ``n_trials=10``, so this is a two-component
binomial mixture. As in the paper, EM starts from θ_A = 0.6, θ_B = 0.5 with the coins picked
with fixed equal probabilities (``learn_weights=False``), and converges to θ_A ≈ 0.80,
θ_B ≈ 0.52. Then the picking probabilities are learned too.

C. B. Do and S. Batzoglou (2008), "What is the expectation maximization algorithm?",
Nature Biotechnology 26(8): 897–899.

Run: ``python scripts/examples/two_coins.py``
"""

from __future__ import annotations

import numpy as np

from streamem.estimators.discrete import BinomialMixture

heads = np.array([[5], [9], [8], [4], [7]])  # one row per set of ten tosses

history = []  # what the callback sees after every M-step
coins = BinomialMixture(
    n_components=2,
    n_trials=10,
    probabilities_init=[[0.6], [0.5]],  # θ_A, θ_B
    weights_init=[0.5, 0.5],
    learn_weights=False,
    tol=1e-12,
    callback=history.append,
).fit(heads)

print("EM with the coins picked with fixed probabilities ½, ½")
print("iteration   θ_A     θ_B     log-likelihood before the step")
for step in history[:10]:
    theta_a, theta_b = step.model.params.probabilities.ravel()
    print(f"{step.n_iter:9d}   {theta_a:.4f}  {theta_b:.4f}  {step.lower_bound * len(heads):.6f}")
theta_a, theta_b = coins.probabilities_.ravel()
print(f"converged after {coins.n_iter_} iterations: θ_A = {theta_a:.4f}, θ_B = {theta_b:.4f}")
responsibilities = coins.predict_proba(heads)[:, 0]
print("P(coin A) for each set:", " ".join(f"{p:.2f}" for p in responsibilities))

print()
print("EM learning the picking probabilities too")
free = BinomialMixture(
    n_components=2, n_trials=10, probabilities_init=[[0.6], [0.5]], tol=1e-12, max_iter=10_000
).fit(heads)
(theta_a, theta_b), (weight_a, weight_b) = free.probabilities_.ravel(), free.weights_
print(f"converged after {free.n_iter_} iterations: θ_A = {theta_a:.4f}, θ_B = {theta_b:.4f}")
print(f"P(pick A) = {weight_a:.4f}, P(pick B) = {weight_b:.4f}")
print(
    f"mean log-likelihood {free.lower_bound_:.6f} (weights learned) vs "
    f"{coins.lower_bound_:.6f} (weights fixed at ½)"
)
