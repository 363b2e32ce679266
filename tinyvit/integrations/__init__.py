"""Trainer integrations (docs/trainers.md). Each module imports its trainer lazily, so
``import tinyvit`` never needs Lightning or Accelerate."""
