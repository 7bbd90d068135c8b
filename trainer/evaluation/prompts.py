"""CLIP's ImageNet prompt templates and the paper's prompt ensembling (ALIGN 5.2, after CLIP 3.1.4).

Each class name is put into every template, the template texts are embedded, the (L2-normalized)
embeddings are averaged and the mean is re-normalized: that unit vector is the class's zero-shot
classifier weight. Without ensembling a single template is used (CLIP's default "a photo of a {}.").
"""
from typing import Callable, Sequence

import numpy as np

from trainer.evaluation.metrics import l2_normalize

SINGLE_TEMPLATE = "a photo of a {}."

# The 80 templates of CLIP's "Prompt_Engineering_for_ImageNet" notebook, in its order.
CLIP_IMAGENET_TEMPLATES = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.",
    "graffiti of a {}.", "a bad photo of the {}.", "a cropped photo of the {}.", "a tattoo of a {}.",
    "the embroidered {}.", "a photo of a hard to see {}.", "a bright photo of a {}.",
    "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.",
    "a bright photo of the {}.", "a cropped photo of a {}.", "a plastic {}.",
    "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.",
    "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.",
    "a close-up photo of the {}.", "a photo of a {}.", "the origami {}.",
    "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.", "a origami {}.",
    "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.",
    "a photo of a nice {}.", "a photo of a weird {}.", "a blurry photo of a {}.",
    "a cartoon {}.", "art of a {}.", "a sketch of the {}.", "a embroidered {}.",
    "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.",
    "a photo of the small {}.", "a photo of the weird {}.", "the cartoon {}.", "art of the {}.",
    "a drawing of the {}.", "a photo of the large {}.", "a black and white photo of a {}.",
    "the plushie {}.", "a dark photo of a {}.", "itap of a {}.", "graffiti of the {}.",
    "a toy {}.", "itap of my {}.", "a photo of a cool {}.", "a photo of a small {}.",
    "a tattoo of the {}.",
)
assert len(CLIP_IMAGENET_TEMPLATES) == 80


def prompt_texts(class_names: Sequence[str], templates: Sequence[str]) -> list:
    """All prompts, class-major: [c0 t0, c0 t1, ..., c1 t0, ...]."""
    return [t.format(name) for name in class_names for t in templates]


def ensemble_class_embeddings(prompt_embeddings: np.ndarray, num_classes: int) -> np.ndarray:
    """[C * T, D] class-major prompt embeddings -> [C, D]: normalize, average per class, re-normalize."""
    emb = l2_normalize(prompt_embeddings)
    if emb.shape[0] % num_classes:
        raise ValueError(f"{emb.shape[0]} prompt embeddings do not split into {num_classes} classes")
    per_class = emb.reshape(num_classes, emb.shape[0] // num_classes, emb.shape[1])
    return l2_normalize(per_class.mean(axis=1))


def class_embeddings(
    embed_texts: Callable[[Sequence[str]], np.ndarray],
    class_names: Sequence[str],
    ensemble: bool = True,
    templates: Sequence[str] = CLIP_IMAGENET_TEMPLATES,
    single_template: str = SINGLE_TEMPLATE,
) -> np.ndarray:
    """Zero-shot classifier weights [C, D] from a text embedder (with or without prompt ensembling)."""
    used = tuple(templates) if ensemble else (single_template,)
    return ensemble_class_embeddings(embed_texts(prompt_texts(class_names, used)), len(class_names))
