"""Models for the resume / interrupt tests: test_resnet that sends its own process a signal
(TINYVIT_TEST_SIGNAL: KILL by default, or INT = Ctrl-C) at the N-th forward when
TINYVIT_TEST_KILL_AT=N is set (mid-epoch, at a known step). ``student`` counts training
forwards only (not evaluation); ``teacher`` counts every forward (save-logits)."""
import os
import signal

import torch

_calls = [0]


class _Killing(torch.nn.Module):
    def __init__(self, inner, train_only=True):
        super().__init__()
        self.inner = inner
        self.train_only = train_only

    def forward(self, x):
        if self.training or not self.train_only:
            _calls[0] += 1
            if _calls[0] == int(os.environ.get("TINYVIT_TEST_KILL_AT", "0")):
                os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get("TINYVIT_TEST_SIGNAL", "KILL")))
        return self.inner(x)


def student():
    import timm

    return _Killing(timm.create_model("test_resnet", pretrained=False, num_classes=10))


def teacher():
    import timm

    return _Killing(timm.create_model("test_resnet", pretrained=False, num_classes=10), train_only=False)
