"""scikit-learn's handwritten digits, as float64 images in [0, 1]."""

import numpy as np


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 handwritten digits (1797 images, shipped with the package:
    no download): pixel intensities scaled to [0, 1], shape `(1797, 64)`, and the
    labels 0–9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float64) / 16.0, bunch.target.astype(np.int64)
