"""A student for the resume test: test_resnet that SIGKILLs its own process at the N-th
training forward when TINYVIT_TEST_KILL_AT is set (a kill mid-epoch, at a known step)."""
import os
import signal

import torch

_calls = [0]


class _Killing(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if self.training:
            _calls[0] += 1
            if _calls[0] == int(os.environ.get("TINYVIT_TEST_KILL_AT", "0")):
                os.kill(os.getpid(), signal.SIGKILL)
        return self.inner(x)


def student():
    import timm

    return _Killing(timm.create_model("test_resnet", pretrained=False, num_classes=10))
