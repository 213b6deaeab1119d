"""How alike are two views of the same images? Per-image similarity measures and their spread.

    spearman(a, b, absolute=True)   maps (N, ...) x (N, ...) -> (N,) rank correlation of the values
    ssim(a, b)                      maps (N, h, w) or images (N, h, w, 3) -> (N,) structural similarity
    summarize(values)               (N,) -> {"n", "mean", "sd", "ci_low", "ci_high", "p2_5", "p97_5"}

- **Spearman** (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018): the Pearson correlation of
  the ranks of the values (ties share their mean rank, `scipy.stats.rankdata`), of the absolute values
  (`absolute=True`: where the map is strong, whatever its sign) or of the signed values. Over the pixels of
  an image (decoded images: every pixel and colour, the "pixel rank correlation") or the entries of a
  vector (a channel ranking). A constant map ranks nothing above anything: its correlation with a
  non-constant map is 0, with another constant map 1 (both say the same: nothing).
- **SSIM** (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004): Gaussian window of standard deviation 1.5
  truncated at 3.5 sd (11 x 11 pixels, `scipy.ndimage.gaussian_filter`, reflected borders), K1 = 0.01,
  K2 = 0.03, C1 = (K1 L)^2, C2 = (K2 L)^2, the mean of the SSIM map over pixels (and colours). Saliency maps
  are rescaled to [0, 1] per image first (min-max of the absolute value, as Adebayo et al. do), so L = 1;
  decoded images are compared as they are, in [-1, 1] (L = 2). These are skimage's
  `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)` settings.
"""
from __future__ import annotations

import numpy as np

from keras_latent import stats
from keras_latent.errors import UsageError

SSIM_SIGMA = 1.5  # Gaussian window standard deviation (Wang et al. 2004)
SSIM_TRUNCATE = 3.5  # window radius in standard deviations: an 11 x 11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim < 2 or not len(a):
        raise UsageError(f"similarity needs two arrays of the same shape (N, ...) with N >= 1, got {a.shape} "
                         f"and {b.shape}")
    return a.reshape(len(a), -1), b.reshape(len(b), -1)


def spearman(a, b, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation of a[i] and b[i] for each i: (N,) float64 in [-1, 1] (see the module doc)."""
    from scipy.stats import rankdata

    a, b = _pair(a, b)
    if absolute:
        a, b = np.abs(a), np.abs(b)
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra, rb = ra - ra.mean(axis=1, keepdims=True), rb - rb.mean(axis=1, keepdims=True)
    na, nb = np.sqrt((ra ** 2).sum(axis=1)), np.sqrt((rb ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra * rb).sum(axis=1) / (na * nb)
    flat_a, flat_b = na == 0, nb == 0
    rho[flat_a ^ flat_b] = 0.0
    rho[flat_a & flat_b] = 1.0
    return np.clip(rho, -1.0, 1.0)


def rescale_maps(maps) -> np.ndarray:
    """|maps| (N, ...) rescaled to [0, 1] per image (min-max); a constant map becomes 0 everywhere."""
    maps = np.abs(np.asarray(maps, np.float64))
    flat = maps.reshape(len(maps), -1)
    low, high = flat.min(axis=1), flat.max(axis=1)
    span = np.where(high > low, high - low, 1.0)
    return ((flat - low[:, None]) / span[:, None]).reshape(maps.shape)


def ssim(a, b, data_range: float | None = None) -> np.ndarray:
    """Mean SSIM of a[i] and b[i]: (N,) float64. a, b: maps (N, h, w), compared after `rescale_maps`
    (data_range None), or images (N, h, w, 3) on a given `data_range` (2 for [-1, 1]), colours separately."""
    from scipy.ndimage import gaussian_filter

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    _pair(a, b)
    if a.ndim not in (3, 4):
        raise UsageError(f"SSIM needs maps (N, h, w) or images (N, h, w, channels), got shape {a.shape}")
    if data_range is None:
        a, b, data_range = rescale_maps(a), rescale_maps(b), 1.0
    if a.ndim == 3:
        a, b = a[..., None], b[..., None]
    sigma = (0, SSIM_SIGMA, SSIM_SIGMA, 0)  # blur over pixels only, never across images or colours

    def blur(x):
        return gaussian_filter(x, sigma, mode="reflect", truncate=SSIM_TRUNCATE)

    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return index.reshape(len(index), -1).mean(axis=1)


def similarities(a, b) -> dict[str, np.ndarray]:
    """Every measure that applies to a pair of view arrays (N, ...): {"spearman_abs", "spearman_signed"} and,
    for maps (N, h, w), "ssim" (each (N,))."""
    out = {"spearman_abs": spearman(a, b, True), "spearman_signed": spearman(a, b, False)}
    if np.ndim(a) == 3 and min(np.shape(a)[1:]) > 1:
        out["ssim"] = ssim(a, b)
    return out


def summarize(values, confidence: float = stats.CONFIDENCE) -> dict:
    """Spread of a per-image figure (N,): {"n", "mean", "sd", "ci_low", "ci_high"} (Student's t interval of the
    mean, keras_latent.stats.mean_interval) plus "p2_5" and "p97_5", the 2.5th and 97.5th percentiles of the
    values themselves. NaNs are left out; numbers are plain floats (JSON-able), None when undefined."""
    values = np.asarray(values, np.float64).ravel()
    values = values[np.isfinite(values)]
    out = {k: v for k, v in stats.mean_interval(values.tolist(), confidence).items() if k != "se"}
    low, high = (np.percentile(values, [2.5, 97.5]).tolist() if len(values) else (None, None))
    return {**out, "p2_5": low, "p97_5": high}
