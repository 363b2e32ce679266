"""The small-image recipes: one definition of what the demo and the contraction search train with.

``tinyvit demo`` and ``tinyvit contract`` (its proxies and ``--make-store`` teacher) run the
same short Fashion-MNIST-sized trainings; their augmentation, the teacher's own recipe and the
demo's default models are chosen here and nowhere else, so the two jobs cannot drift apart.
"""
from __future__ import annotations

from typing import Optional

from ..augment.config import AugConfig

__all__ = ["FMNIST_MEAN", "FMNIST_STD", "DEMO_TEACHER", "DEMO_STUDENT", "TEACHER_SEED_OFFSET",
           "demo_aug_config", "teacher_aug_config", "student_aug_config", "teacher_loader"]

# Fashion-MNIST's pixel mean and std (grayscale, replayed as 3 equal channels)
FMNIST_MEAN = (0.286,) * 3
FMNIST_STD = (0.353,) * 3

# the demo's default timm models (pretrained=False): small enough for 2 CPU cores
DEMO_TEACHER = "test_resnet"
DEMO_STUDENT = "test_efficientnet"

# The teacher's own augmentation stream is drawn from base seed + this offset: independent of
# the stream whose seeds the store records (the students').
TEACHER_SEED_OFFSET = 1000


def demo_aug_config(img_size: int) -> AugConfig:
    """Milder than the ImageNet recipe (28 px images cannot take 8%-area crops), but every
    replayed step is on: crop, flip, RandAugment, erasing, Mixup and CutMix."""
    return AugConfig(img_size=img_size, scale=(0.5, 1.0), auto_augment="rand-m6-n1-mstd0.5",
                     re_prob=0.1, mixup_alpha=0.2, cutmix_alpha=1.0, mix_prob=0.5,
                     mean=FMNIST_MEAN, std=FMNIST_STD)


def teacher_aug_config(img_size: int) -> AugConfig:
    """The teacher's own training recipe: light augmentation converges fastest. It is
    independent of the store's config, which only governs what the teacher labels."""
    return AugConfig(img_size=img_size, scale=(0.6, 1.0), auto_augment=None, re_prob=0.0,
                     mixup_alpha=0.0, cutmix_alpha=0.0, mean=FMNIST_MEAN, std=FMNIST_STD)


def student_aug_config(img_size: int, aug_config: Optional[AugConfig] = None) -> AugConfig:
    """What the students (and so the store) are augmented with: ``aug_config`` when given,
    else the demo's recipe. The one place that default is chosen."""
    return aug_config if aug_config is not None else demo_aug_config(img_size)


def teacher_loader(dataset, img_size: int, seed: int, batch_size: int):
    """The teacher's training batches: hard labels, :func:`teacher_aug_config`, drawn from
    ``seed + TEACHER_SEED_OFFSET``."""
    from ..data.loader import ReplayLoader  # the loader stack only when a teacher trains

    return ReplayLoader(dataset, teacher_aug_config(img_size), base_seed=seed + TEACHER_SEED_OFFSET,
                        batch_size=batch_size)
