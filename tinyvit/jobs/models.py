"""Model construction for the jobs: a timm name or ``module:function``, optional strict
checkpoint; typed errors naming the model / file."""
from __future__ import annotations

import importlib
import json
from typing import Optional

import torch

__all__ = ['ModelError', 'TeacherOutputError', 'build_model', 'parse_kwargs']


from ..errors import ModelError, TeacherOutputError  # noqa: E402  (defined in tinyvit.errors)


def build_model(name: str, num_classes: int, *, img_size: Optional[int] = None, in_chans: int = 3,
                checkpoint: Optional[str] = None, kwargs: Optional[dict] = None) -> torch.nn.Module:
    """``module:function`` (called with no arguments; must return an nn.Module) or a timm model
    name (``pretrained=False``: never downloads; ``img_size`` passed when the model takes it).
    ``checkpoint``: a state dict (or a dict with 'model'/'state_dict') loaded with
    ``torch.load(weights_only=True)``, strictly."""
    kwargs = dict(kwargs or {})
    if ":" in name:
        mod_name, fn_name = name.split(":", 1)
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as exc:
            raise ModelError(f"model {name!r}: cannot import {fn_name!r} from {mod_name!r}: {exc}") from None
        model = fn(**kwargs)
        if not isinstance(model, torch.nn.Module):
            raise ModelError(f"model {name!r}: {fn_name}() returned {type(model).__name__}, not an nn.Module")
    else:
        import timm

        if not timm.is_model(name):
            raise ModelError(f"model {name!r}: not a timm model name (see timm.list_models())")
        base = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
        try:
            model = timm.create_model(name, img_size=img_size, **base) if img_size else \
                timm.create_model(name, **base)
        except TypeError:  # CNNs take no img_size
            model = timm.create_model(name, **base)
    if checkpoint:
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelError(f"checkpoint {checkpoint!r} does not exist") from None
        except Exception as exc:
            raise ModelError(f"checkpoint {checkpoint!r}: cannot load with weights_only=True: {exc}") from None
        if isinstance(state, dict):
            for key in ("model", "state_dict", "model_state"):
                if key in state and isinstance(state[key], dict):
                    state = state[key]
                    break
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError) as exc:
            raise ModelError(f"checkpoint {checkpoint!r} does not fit model {name!r}: "
                             f"{str(exc).splitlines()[0]}") from None
    return model


def parse_kwargs(text: Optional[str]) -> dict:
    if not text:
        return {}
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"model kwargs {text!r}: not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise ModelError(f"model kwargs {text!r}: must be a JSON object")
    return d
