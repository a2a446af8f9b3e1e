"""A Bernoulli mixture of handwritten digits: clusters found without the labels.

scikit-learn's bundled 8×8 digits (1797 images, intensities 0–16) are binarised — a pixel is
on when its intensity is above 8 — and fitted with a ten-component Bernoulli mixture. Each
component is a "prototype" image of pixel-on probabilities. The labels are used only
afterwards, to see how well the components match the digits: purity (the share of images
whose component's most common digit is their own) and the adjusted Rand index (0 for random
assignments, 1 for a perfect match).

Run: ``python scripts/examples/digits_bernoulli.py``
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from streamem.estimators.discrete import BernoulliMixture

images, digits = load_digits(return_X_y=True)
pixels = images > 8  # binary data: bool is fine

start = time.perf_counter()
model = BernoulliMixture(
    n_components=10, n_init=10, init_params="random", tol=1e-6, max_iter=500, random_state=0
).fit(pixels)
seconds = time.perf_counter() - start
components = model.predict(pixels)

print(f"fitted {len(pixels)} images × {pixels.shape[1]} pixels in {seconds:.1f} s")
print(f"mean log-likelihood {model.lower_bound_:.3f} after {model.n_iter_} iterations")
majority = np.array(
    [np.bincount(digits[components == k], minlength=10).argmax() for k in range(10)]
)
purity = np.mean(majority[components] == digits)
print(f"purity {purity:.3f}, adjusted Rand index {adjusted_rand_score(digits, components):.3f}")

# The components' pixel-on probabilities, side by side: '#' > 0.5, '+' > 0.2, '.' otherwise.
order = np.argsort(majority, kind="stable")
print("component prototypes (majority digit, weight):")
print("  ".join(f"{majority[k]} {model.weights_[k]:.2f}".ljust(8) for k in order))
for row in range(8):
    cells = model.probabilities_[order].reshape(10, 8, 8)[:, row]
    print(
        "  ".join("".join("#" if p > 0.5 else "+" if p > 0.2 else "." for p in c) for c in cells)
    )
