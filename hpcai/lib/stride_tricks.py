"""``xp.lib.stride_tricks``: :func:`sliding_window_view` (see :func:`hpcai.sliding_window_view`)."""

from .._manipulation_functions import sliding_window_view

__all__ = ["sliding_window_view"]
