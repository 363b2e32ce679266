"""The jobs behind the CLI, usable from Python: ``save_logits`` (teacher once over the
augmented data), ``train`` (the one training loop: distill / hard labels / online KD),
``evaluate``, ``demo``; ``models`` builds timm / ``module:function`` models,
``distributed`` sets up torchrun."""
