import numpy as np
import pytest

from trainer.evaluation import prompts


def test_clip_templates():
    assert len(prompts.CLIP_IMAGENET_TEMPLATES) == 80
    assert len(set(prompts.CLIP_IMAGENET_TEMPLATES)) == 80
    assert all(t.count("{}") == 1 for t in prompts.CLIP_IMAGENET_TEMPLATES)
    assert prompts.SINGLE_TEMPLATE in prompts.CLIP_IMAGENET_TEMPLATES


def test_prompt_texts_are_class_major():
    assert prompts.prompt_texts(["cat", "dog"], ["a {}.", "the {}!"]) == ["a cat.", "the cat!", "a dog.", "the dog!"]


def test_ensembling_normalizes_averages_and_renormalizes():
    # class 0: templates embed to (3, 4) and (0, 2) -> unit (0.6, 0.8) and (0, 1) -> mean (0.3, 0.9)
    #   -> / sqrt(0.9) = (0.31623, 0.94868). A plain mean of the raw vectors would give (1.5, 3)
    #   -> (0.44721, 0.89443): normalizing each template first matters.
    # class 1: (-1, 0) and (-2, 0) -> (-1, 0).
    emb = np.array([[3.0, 4.0], [0.0, 2.0], [-1.0, 0.0], [-2.0, 0.0]])
    out = prompts.ensemble_class_embeddings(emb, num_classes=2)
    np.testing.assert_allclose(out, [[0.3 / np.sqrt(0.9), 0.9 / np.sqrt(0.9)], [-1.0, 0.0]], rtol=1e-6)


def test_class_embeddings_with_and_without_ensembling():
    seen = []

    def embed(texts):
        seen.append(list(texts))
        return np.array([[1.0, float(len(t))] for t in texts])

    prompts.class_embeddings(embed, ["cat", "dog"], ensemble=True)
    assert len(seen[-1]) == 160 and seen[-1][0] == "a bad photo of a cat." and seen[-1][80] == "a bad photo of a dog."
    single = prompts.class_embeddings(embed, ["cat"], ensemble=False)
    assert seen[-1] == ["a photo of a cat."]
    np.testing.assert_allclose(single, [[1 / np.sqrt(290), 17 / np.sqrt(290)]], rtol=1e-6)


def test_wrong_number_of_prompt_embeddings():
    with pytest.raises(ValueError, match="do not split"):
        prompts.ensemble_class_embeddings(np.ones((3, 2)), num_classes=2)
