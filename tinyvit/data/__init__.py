"""Datasets (what a sample index points at) and the loaders that turn records + sources
into training batches: ``datasets.py``, ``idx.py``, ``sources.py``, ``loader.py``."""
