"""The three-panel PNG figure: true colour, probability, and the predicted mask over true colour.

``predict-h5`` draws one per patch (:func:`landslide_engine.h5predict.patch_figure`) and ``make demo`` one for
its synthetic scene (:func:`landslide_engine.demo.render_preview`, with the painted scars outlined). True colour
is B4, B3, B2 (the Seed's code showed B1, B2, B3, which is not true colour), each stretched 2-98 %.
matplotlib is imported only when a figure is drawn, and only its object API is used (no pyplot state).
"""

from __future__ import annotations

import numpy as np

from landslide_engine.bands import L4S_BANDS, RGB_BANDS

STRETCH_PERCENTILES = (2.0, 98.0)
OVERLAY_COLOUR = (1.0, 0.1, 0.1)
OVERLAY_ALPHA = 0.5


def stretch_rgb(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) values to 0..1, each channel stretched between its 2nd and 98th percentile."""
    low, high = np.percentile(rgb, STRETCH_PERCENTILES, axis=(0, 1))
    span = np.where(high > low, high - low, 1.0)
    return np.clip((rgb - low) / span, 0.0, 1.0)


def true_colour(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in 0..1 from bands B4, B3, B2 of a (14, H, W) l4s image, each stretched 2–98 %."""
    return stretch_rgb(np.stack([image[L4S_BANDS.index(band)] for band in RGB_BANDS], axis=-1).astype(np.float64))


def three_panel_figure(
    rgb: np.ndarray,
    probability: np.ndarray,
    predicted: np.ndarray,
    title: str,
    overlay_title: str,
    outline: np.ndarray | None = None,
):
    """A matplotlib Figure (Agg) with ``rgb``, ``probability`` and ``predicted`` in red over ``rgb``.

    ``outline`` (a boolean mask, e.g. the true scars) is drawn as a cyan contour on the third panel.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    overlay = rgb.copy()
    overlay[predicted] = (1 - OVERLAY_ALPHA) * overlay[predicted] + OVERLAY_ALPHA * np.array(OVERLAY_COLOUR)
    figure = Figure(figsize=(12, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    rgb_axes, probability_axes, overlay_axes = figure.subplots(1, 3)
    rgb_axes.imshow(rgb, interpolation="nearest")
    rgb_axes.set_title("True colour (B4, B3, B2)")
    shown = probability_axes.imshow(probability, vmin=0.0, vmax=1.0, cmap="magma", interpolation="nearest")
    probability_axes.set_title("Landslide probability")
    figure.colorbar(shown, ax=probability_axes, fraction=0.046, pad=0.02)
    overlay_axes.imshow(overlay, interpolation="nearest")
    if outline is not None:
        overlay_axes.contour(outline, levels=[0.5], colors="cyan", linewidths=0.8)
    overlay_axes.set_title(overlay_title)
    for axes in (rgb_axes, probability_axes, overlay_axes):
        axes.set_axis_off()
    figure.suptitle(title)
    return figure
