"""NumPy-style helpers outside the Array API standard that libraries look up as ``xp.lib``.

xarray's ``rolling`` calls ``xp.lib.stride_tricks.sliding_window_view`` on the array's
namespace; this subpackage gives it one that keeps the data on its device with its tags.
"""

from . import stride_tricks

__all__ = ["stride_tricks"]
