"""Stages of the still-image endless-loop pipeline (``flows/make_endless_loop.py``)."""
