"""How much of a region's change between two frames a motion field explains.

A blinking light changes its brightness in place: moving the earlier frame along any
plausible motion field does not predict the later one.  A limb, a wheel or a car crossing a
region, or content left misaligned by the camera alignment, changes because something moved:
the earlier frame moved along the optical flow predicts the later one well.  For one pair of
frames ``a`` (earlier) and ``b`` (later) and a flow ``f`` that gives, for every pixel of ``b``,
where its content was in ``a``, this kernel sums per label

* the *static* residual ``|b(x) - a(x)|`` and
* the *compensated* residual ``|b(x) - a(x + f(x))|`` (``a`` sampled bilinearly, coordinates
  clamped to the frame),

over the pixels that are valid (visible in both frames) and carry a label ``> 0``.  The share
of the change that motion explains is ``1 - compensated / static`` (summed over frame pairs by
the caller, :mod:`tasks.cyclic_veto`).
"""

from __future__ import annotations

import numpy as np

from kernels._jit import jit

__all__ = ["motion_compensated_change"]


@jit
def _sample(img, y, x):
    h, w = img.shape
    y = min(max(y, 0.0), h - 1.0)
    x = min(max(x, 0.0), w - 1.0)
    y0 = int(np.floor(y))
    x0 = int(np.floor(x))
    y1 = min(y0 + 1, h - 1)
    x1 = min(x0 + 1, w - 1)
    fy = y - y0
    fx = x - x0
    top = img[y0, x0] * (1.0 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1.0 - fx) + img[y1, x1] * fx
    return top * (1.0 - fy) + bottom * fy


@jit
def _motion_compensated_change(a, b, flow, reverse_flow, two_way, labels, valid, n_labels):
    static = np.zeros(n_labels + 1)
    compensated = np.zeros(n_labels + 1)
    reverse = np.zeros(n_labels + 1)
    h, w = a.shape
    for y in range(h):
        for x in range(w):
            k = labels[y, x]
            if k <= 0 or not valid[y, x]:
                continue
            u = a[y, x]
            v = b[y, x]
            static[k] += abs(v - u)
            compensated[k] += abs(v - _sample(a, y + flow[y, x, 1], x + flow[y, x, 0]))
            if two_way:
                reverse[k] += abs(u - _sample(b, y + reverse_flow[y, x, 1], x + reverse_flow[y, x, 0]))
    return static[1:], compensated[1:], reverse[1:]


def motion_compensated_change(
    a: np.ndarray,
    b: np.ndarray,
    flow: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray,
    n_labels: int,
    reverse_flow: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Per-label static and motion-compensated absolute residuals of one frame pair.

    With ``reverse_flow`` the pair is also compensated the other way round (``a`` predicted
    from ``b``) in the same pass, so the static residual, the same both ways, is summed once.

    Parameters
    ----------
    a, b : ndarray, (h, w) float
        Luminance of the earlier and the later frame (any unit; 0-255 in the pipeline).
    flow : ndarray, (h, w, 2) float
        For every pixel of ``b``, the displacement (x, y), in pixels, to where its content lies
        in ``a`` (OpenCV's flow from ``b`` to ``a``).
    labels : ndarray, (h, w) int
        Region label of each pixel, 1..``n_labels``; 0 = no region.
    valid : ndarray, (h, w) bool
        Pixels that count (visible in both frames).
    n_labels : int
        Number of labels; labels above it are an error.
    reverse_flow : ndarray, (h, w, 2) float, optional
        For every pixel of ``a``, the displacement (x, y) to where its content lies in ``b``
        (OpenCV's flow from ``a`` to ``b``).

    Returns
    -------
    static, compensated : ndarray, (n_labels,) float64
        Sum over each region's valid pixels of ``|b - a|`` and of ``|b - a(x + flow)|``.
    reverse : ndarray, (n_labels,) float64
        Only with ``reverse_flow``: the sum of ``|a - b(x + reverse_flow)|``.

    Examples
    --------
    >>> a = np.zeros((1, 6)); a[0, 2] = 10.0
    >>> b = np.zeros((1, 6)); b[0, 3] = 10.0          # the bright pixel moved one to the right
    >>> flow = np.zeros((1, 6, 2)); flow[0, :, 0] = -1.0  # b's content came from one to the left
    >>> labels = np.ones((1, 6), np.int64)
    >>> motion_compensated_change(a, b, flow, labels, np.ones((1, 6), bool), 1)
    (array([20.]), array([0.]))
    """
    a = np.ascontiguousarray(a, np.float64)
    b = np.ascontiguousarray(b, np.float64)
    flow = np.ascontiguousarray(flow, np.float64)
    labels = np.ascontiguousarray(labels, np.int64)
    valid = np.ascontiguousarray(valid, np.bool_)
    if a.ndim != 2 or b.shape != a.shape or labels.shape != a.shape or valid.shape != a.shape:
        raise ValueError(f"a, b, labels and valid must be 2-D of one shape, got {a.shape}, {b.shape}, "
                         f"{labels.shape}, {valid.shape}")
    two_way = reverse_flow is not None
    reverse_flow = np.ascontiguousarray(reverse_flow if two_way else np.zeros((1, 1, 2)), np.float64)
    for name, f in (("flow", flow), ("reverse_flow", reverse_flow if two_way else flow)):
        if f.shape != (*a.shape, 2):
            raise ValueError(f"{name} must have shape {(*a.shape, 2)}, got {f.shape}")
    if n_labels < 0 or (labels.size and labels.max() > n_labels):
        raise ValueError(f"labels must lie in 0..{n_labels}")
    if not (np.isfinite(flow).all() and np.isfinite(reverse_flow).all() and np.isfinite(a).all()
            and np.isfinite(b).all()):
        raise ValueError("a, b and the flows must be finite")
    static, compensated, reverse = _motion_compensated_change(
        a, b, flow, reverse_flow, two_way, labels, valid, int(n_labels))
    return (static, compensated, reverse) if two_way else (static, compensated)
