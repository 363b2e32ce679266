"""`tinyvit demo` options (the job itself: ``tinyvit.jobs.demo``)."""
from __future__ import annotations

from ..jobs.recipes import DEMO_STUDENT, DEMO_TEACHER
from .options import nonneg_int, positive_float, positive_int


def add_demo_arguments(p) -> None:
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist[:DIR] or an ImageFolder directory")
    p.add_argument("--out", default="tinyvit-demo",
                   help="folder for results.json, demo.png, the teacher and the store (kept; a rerun "
                   "with the same options reuses the teacher and the store)")
    p.add_argument("--train-samples", type=positive_int, default=2000,
                   help="the students train on the first N training images")
    p.add_argument("--teacher-samples", type=positive_int, default=20000,
                   help="the teacher trains on the first N training images (more than the students: a "
                   "teacher that knows more than the student's data shows, as in pretraining distillation)")
    p.add_argument("--val-samples", type=positive_int, default=2000, help="first N test images")
    p.add_argument("--img-size", type=positive_int, default=28,
                   help="image side (28 = Fashion-MNIST's own: no resize anywhere)")
    p.add_argument("--teacher", default=DEMO_TEACHER, help="timm model (pretrained=False)")
    p.add_argument("--student", default=DEMO_STUDENT, help="timm model (pretrained=False)")
    p.add_argument("--teacher-epochs", type=positive_int, default=4, help="teacher training epochs")
    p.add_argument("--epochs", type=positive_int, default=8, help="student epochs = stored epochs")
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="student runs per method (init seeds --seed..--seed+N-1): mean +- std")
    p.add_argument("--topk", type=positive_int, default=5, help="stored classes per record")
    p.add_argument("--batch-size", type=positive_int, default=64, help="training batch size")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="AdamW peak learning rate")
    p.add_argument("--no-online", action="store_true", help="skip the online-teacher (dense KD) students")
    p.add_argument("--seed", type=nonneg_int, default=0, help="first student init seed; augmentation base seed")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch intra-op threads (1: these tiny convnets gain little from more, and OpenMP "
                   "threads slow down by 10-50x when the cores are shared with other work)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (one line per phase)")
