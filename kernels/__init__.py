"""Numba kernels: numpy arrays in, numpy arrays out; no I/O, no logging, no global state."""
