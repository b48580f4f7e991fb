"""Numba kernels of the still-image endless-loop pipeline (Halperin et al., SIGGRAPH 2021)."""
