"""timm pieces around DistillLoader: a timm model, timm's ClassificationTask with our
criterion (unchanged), bf16 inputs, and timm's eval transform built from the store so
validation cannot drift from training (size, interpolation, normalisation).

    python examples/timm_task.py

For timm's own train.py see docs/trainers.md (six hunks, each placed by a quoted train.py line).
"""
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _tiny  # noqa: E402

import tinyvit  # noqa: E402


def main(epochs=3):
    import timm
    from PIL import Image
    from timm.task import ClassificationTask

    torch.set_num_threads(1)
    ds = _tiny.dataset()
    path = os.path.join(tempfile.gettempdir(), "tinyvit_example_store")
    _tiny.store(path, ds)
    loader = tinyvit.DistillLoader(ds, path, _tiny.CFG, batch_size=32, epochs=epochs,
                                   dtype=torch.bfloat16)
    model = timm.create_model("test_vit", num_classes=_tiny.NUM_CLASSES,
                              img_size=loader.input_size[1:], patch_size=8).to(torch.bfloat16)
    task = ClassificationTask(model, criterion=tinyvit.SparseSoftCrossEntropy(), verbose=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, targets in loader:
            out = task(x, targets)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
        print(f"epoch {epoch} (store epoch {loader.data_epoch}): loss {out['loss'].item():.4f}")
    val_tf = tinyvit.eval_transform(path)  # timm.data.create_transform(**eval_config(store))
    img = Image.fromarray(np.asarray(ds[0], np.uint8)).convert("RGB")
    with torch.no_grad():
        logits = model(val_tf(img).unsqueeze(0).to(torch.bfloat16))
    print("eval config:", tinyvit.eval_config(path), "-> logits", tuple(logits.shape))


if __name__ == "__main__":
    main()
