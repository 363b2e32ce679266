"""The jobs behind the CLI, usable from Python: ``save_logits`` (teacher once over the
augmented data), ``train`` (the one training loop: distill / hard labels / online KD),
``evaluate``, ``demo``, ``contract`` (the progressive contraction search and its proxies);
``recipes`` holds the small-image recipes the demo and the search share; ``models`` builds
timm / ``module:function`` models, ``distributed`` sets up torchrun. Jobs raise typed errors;
only ``tinyvit.cli`` turns them into one-line exits."""
