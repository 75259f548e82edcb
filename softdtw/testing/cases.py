"""Bad inputs every realization must reject with the same error, as NumPy arrays.

Each entry is ``(x, y, kwargs, exception, message regex)``; a realization's test converts the
arrays to its own type where the dtype allows (strings and complex stay NumPy-only where the
framework cannot hold them) and checks that ``soft_dtw(x, y, **kwargs)`` raises.
"""

import numpy as np

BAD_PAIRS = [
    (np.zeros(3), np.zeros(3), {}, ValueError, "x must have shape"),
    (np.zeros((1, 1, 3, 1)), np.zeros((1, 3, 1)), {}, ValueError, "x must have shape"),
    (np.zeros((2, 3, 1)), np.zeros((3, 3, 1)), {}, ValueError, "same batch size"),
    (np.zeros((2, 3, 1)), np.zeros((2, 3, 2)), {}, ValueError, "same number of features"),
    (np.zeros((2, 0, 1)), np.zeros((2, 3, 1)), {}, ValueError, "x is an empty series"),
    (np.zeros((2, 3, 1)), np.zeros((2, 0, 1)), {}, ValueError, "y is an empty series"),
    (np.zeros((3, 1)), np.zeros((2, 3, 1)), {}, ValueError, "must both be batched"),
    (np.zeros((1, 1)), np.zeros((1, 1), dtype=complex), {}, TypeError, "y must hold real numbers"),
    (np.zeros((1, 1)), np.zeros((1, 1)), {"gamma": 0.0}, ValueError, "gamma must be > 0"),
    (np.zeros((1, 1)), np.zeros((1, 1)), {"gamma": -1.0}, ValueError, "gamma must be > 0"),
    (np.zeros((1, 1)), np.zeros((1, 1)), {"gamma": float("nan")}, ValueError, "gamma must be finite"),
    (np.zeros((1, 1)), np.zeros((1, 1)), {"gamma": float("inf")}, ValueError, "gamma must be finite"),
    (np.zeros((1, 1)), np.zeros((1, 1)), {"gamma": "1"}, TypeError, "gamma must be a real number"),
    (np.zeros((1, 1)), np.zeros((1, 1)), {"global_constraint": "band"}, ValueError, "global_constraint"),
    (np.zeros((1, 1)), np.zeros((1, 1)), {"sakoe_chiba_radius": -1}, ValueError, "sakoe_chiba_radius"),
    (np.zeros((1, 1)), np.zeros((1, 1)), {"sakoe_chiba_radius": 1.5}, TypeError, "sakoe_chiba_radius"),
    (np.zeros((1, 1)), np.zeros((1, 1)), {"itakura_max_slope": 0.5}, ValueError, "itakura_max_slope"),
    (np.zeros((2, 1)), np.zeros((9, 1)), {"itakura_max_slope": 2.0}, ValueError, "itakura_max_slope"),
    (np.zeros((1, 3, 1)), np.zeros((1, 3, 1)), {"x_lengths": [0]}, ValueError, "x_lengths must be >= 1"),
    (np.zeros((1, 3, 1)), np.zeros((1, 3, 1)), {"y_lengths": [4]}, ValueError, "y_lengths must be <="),
    (np.zeros((1, 3, 1)), np.zeros((1, 3, 1)), {"x_lengths": [1, 2]}, ValueError, "x_lengths must have shape"),
    (np.zeros((1, 3, 1)), np.zeros((1, 3, 1)), {"x_lengths": [1.5]}, TypeError, "x_lengths must hold integers"),
]

BAD_COSTS = [
    (np.zeros(3), ValueError, "cost must have shape"),
    (np.zeros((2, 0)), ValueError, "non-empty"),
]
