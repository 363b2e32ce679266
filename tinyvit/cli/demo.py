"""`tinyvit demo` options (the job itself: ``tinyvit.jobs.demo``)."""
from __future__ import annotations


def add_demo_arguments(p) -> None:
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist[:DIR] or an ImageFolder dir")
    p.add_argument("--train-samples", type=int, default=5000, help="first N training images")
    p.add_argument("--val-samples", type=int, default=2000, help="first N test images")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--teacher", default="test_resnet", help="timm model (pretrained=False)")
    p.add_argument("--student", default="test_efficientnet", help="timm model (pretrained=False)")
    p.add_argument("--teacher-epochs", type=int, default=4)
    p.add_argument("--teacher-samples", type=int, default=20000,
                   help="the teacher trains on the first N training images (more than the student: "
                   "a teacher clearly stronger than the student, as in pretraining distillation)")
    p.add_argument("--epochs", type=int, default=6, help="student epochs = stored epochs")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--online", action="store_true", help="also train with an online teacher (dense KD)")
    p.add_argument("--seed", type=int, default=0, help="model init and augmentation base seed")
    p.add_argument("--workdir", default=None, help="keep the store/checkpoints here (default: a temp dir)")
    p.add_argument("--json", default=None, help="write the results as JSON here")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: these tiny convnets gain little from more, "
                   "and OpenMP threads slow down by 10-50x when the cores are shared with other work)")
    p.add_argument("--no-progress", action="store_true")
