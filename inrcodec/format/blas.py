"""numpy's BLAS on one thread while the decoder runs.

The decoder's products are small or tall and skinny ([16, 21] x [21, a few
thousand] per wavefront, [16, 7] x [7, 16384] per synthesis chunk). OpenBLAS
splits such products over all its threads, which spin while they wait for
each other: beside any other busy process (a second decode, an encode's
other training worker) a product that takes 0.6 ms alone took ~100 ms, and
rendering a 1536x1024 image took 2.3 s instead of 0.16 s (ad hoc,
2026-12-05). On one thread the decoder's time barely depends on what else
runs. The results cannot change: every product is of exact integers
(`fixedpoint`), whatever the thread count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from threadpoolctl import ThreadpoolController

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def _controller() -> ThreadpoolController:
    # Finds the BLAS libraries loaded by then (numpy's OpenBLAS; torch
    # links its MKL statically, out of reach and untouched); built once, ~1 ms.
    return ThreadpoolController()


def one_blas_thread(fn: Callable[P, R]) -> Callable[P, R]:
    """Run `fn` with every loaded BLAS limited to one thread (restored afterwards)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _controller().limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper
