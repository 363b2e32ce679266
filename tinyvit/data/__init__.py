"""Datasets (what a sample index points at) and the loaders that turn records + sources
into training batches: ``datasets.py``, ``idx.py``, ``sources.py``, ``pipeline.py`` (the one
replay pipeline), ``sampler.py`` (traversal order and epochs), ``loader.py``."""
