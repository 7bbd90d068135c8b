"""The paper's evaluations on an embedder (anything with embed_images / embed_texts / text_cls_features).

Each task returns a JSON-serializable dict; recalls and accuracies are fractions in [0, 1].
"""
from typing import Dict, Iterable, Sequence

import numpy as np

from trainer.evaluation import annotations, metrics, prompts
from trainer.evaluation.datasets import ClassFolder, RetrievalSet


def _recalls(values: Dict[int, float]) -> Dict[str, float]:
    return {f"R@{k}": v for k, v in values.items()}


def _load_all(loaders) -> list:
    return [load() for load in loaders]


def embed_named_images(model, loaders, names: Sequence[str]) -> np.ndarray:
    """Embeds images; an unreadable one raises ValueError naming it (not only its position)."""
    from trainer.evaluation.exported_model import UnreadableImageError

    try:
        return model.embed_images(_load_all(loaders))
    except UnreadableImageError as e:
        bad = [names[i] for i in e.indices]
        raise ValueError(f"{len(bad)} unreadable image(s): {', '.join(bad[:5])}") from e


def retrieval(model, data: RetrievalSet, ks: Iterable[int] = metrics.DEFAULT_KS) -> dict:
    """Paper 5.1: image-to-text and text-to-image Recall@K, with the chance level of each."""
    image_emb = embed_named_images(model, data.image_loaders, data.image_ids)
    text_emb = model.embed_texts(data.texts)
    return retrieval_from_embeddings(image_emb, text_emb, data.text_image_ids, data.image_ids, ks)


def retrieval_from_embeddings(image_emb, text_emb, text_image_ids: Sequence, image_ids: Sequence,
                              ks: Iterable[int] = metrics.DEFAULT_KS) -> dict:
    """The retrieval result of `retrieval` from embeddings already computed (also the trainer's
    in-loop evaluation, trainer/in_loop_eval.py): recalls both ways, chance, and the health of
    both embedding spaces (metrics.embedding_health)."""
    ks = tuple(ks)
    result = metrics.image_text_retrieval(image_emb, text_emb, text_image_ids, image_ids, ks)
    captions = np.unique(text_image_ids, return_counts=True)[1]
    per_image = int(round(captions.mean()))
    return {
        "num_images": len(image_ids),
        "num_texts": len(text_image_ids),
        "image_to_text": _recalls(result["image_to_text"]),
        "text_to_image": _recalls(result["text_to_image"]),
        "chance": {
            "image_to_text": {f"R@{k}": metrics.chance_recall(len(text_image_ids), per_image, k) for k in ks},
            "text_to_image": {f"R@{k}": metrics.chance_recall(len(image_ids), 1, k) for k in ks},
        },
        "embedding_health": {"image": metrics.embedding_health(image_emb),
                             "text": metrics.embedding_health(text_emb)},
    }


def retrieval_from_pair_embeddings(image_emb, text_emb, image_ids_of_pairs: Sequence,
                                   ks: Iterable[int] = metrics.DEFAULT_KS) -> dict:
    """`retrieval_from_embeddings` for per-PAIR embeddings (row i: pair i's image and caption):
    pairs that share an image id are one image target, embedded by its first pair's row."""
    first_row = {}
    for row, image_id in enumerate(image_ids_of_pairs):
        first_row.setdefault(image_id, row)
    rows = sorted(first_row.values())
    return retrieval_from_embeddings(np.asarray(image_emb)[rows], text_emb, image_ids_of_pairs,
                                     [image_ids_of_pairs[r] for r in rows], ks)


def embed_class_folder(model, data: ClassFolder) -> np.ndarray:
    loaders = data.image_loaders()
    return embed_named_images(model, loaders, data.paths)


def zero_shot(
    model, data: ClassFolder, ensembling: str = "on", ks: Sequence[int] = (1, 5), image_emb=None
) -> dict:
    """Paper 5.2: nearest class embedding; ensembling "on" (80 CLIP templates), "off" (one
    template) or "both" (reports both, to show the gain)."""
    if image_emb is None:
        image_emb = embed_class_folder(model, data)
    ks = tuple(k for k in ks if k <= len(data.class_names)) or (1,)
    modes = {"on": (True,), "off": (False,), "both": (True, False)}[ensembling]
    result = {
        "num_images": len(data.paths),
        "num_classes": len(data.class_names),
        "chance": {f"top{k}": k / len(data.class_names) for k in ks},
        "majority_class": {f"top{k}": v for k, v in metrics.majority_baseline(data.labels, ks).items()},
    }
    for ensemble in modes:
        weights = prompts.class_embeddings(model.embed_texts, data.class_names, ensemble=ensemble)
        scores = image_emb @ weights.T
        name = "prompt_ensembling" if ensemble else "single_template"
        result[name] = {
            "templates": len(prompts.CLIP_IMAGENET_TEMPLATES) if ensemble else 1,
            **{f"top{k}": v for k, v in metrics.top_k_accuracy(scores, data.labels, ks).items()},
            **{f"mean_per_class_top{k}": v for k, v in metrics.mean_per_class_accuracy(scores, data.labels, ks).items()},
        }
    return result


def knn(model, index: ClassFolder, queries: ClassFolder, ks=metrics.DEFAULT_KS, vote_k: int = 20) -> dict:
    """Paper section 6 (ImageNet KNN): queries' nearest index images by image embedding."""
    query_labels = labels_in(index, queries)
    index_emb, query_emb = embed_class_folder(model, index), embed_class_folder(model, queries)
    return {
        "num_index_images": len(index.paths),
        "num_queries": len(queries.paths),
        **_recalls(metrics.knn_recall(query_emb, query_labels, index_emb, index.labels, ks)),
        f"vote_top1@{vote_k}": metrics.knn_vote_accuracy(query_emb, query_labels, index_emb, index.labels, vote_k),
    }


def labels_in(reference: ClassFolder, other: ClassFolder) -> list:
    """`other`'s labels as indices of `reference`'s classes (matched by name; `other` may have fewer)."""
    position = {name: i for i, name in enumerate(reference.class_names)}
    missing = sorted(set(other.class_names) - set(position))
    if missing:
        raise ValueError(f"eval classes missing from the train/index folder: {missing[:5]}")
    return [position[other.class_names[label]] for label in other.labels]


def linear_probe(model, train: ClassFolder, test: ClassFolder, c_values=(1.0,)) -> dict:
    """Paper 5.3: logistic regression on frozen image embeddings."""
    from trainer.evaluation.linear_probe import linear_probe as probe

    test_labels = labels_in(train, test)
    result = probe(embed_class_folder(model, train), train.labels, embed_class_folder(model, test), test_labels, c_values)
    return {"num_train": len(train.paths), "num_test": len(test.paths), **result}


def intra_modal(model, keys, items, pairs_path: str, modality: str, min_score: float, ks=metrics.DEFAULT_KS) -> dict:
    """Crisscrossed Captions style image-to-image (items: encoded images) or text-to-text retrieval."""
    positives = annotations.positives_matrix(keys, annotations.read_similarity_pairs(pairs_path), min_score)
    emb = model.embed_images(items) if modality == "image" else model.embed_texts(items)
    return {
        "modality": modality,
        "num_items": len(keys),
        "num_queries": int(positives.any(axis=1).sum()),
        "min_score": min_score,
        **_recalls(metrics.intra_modal_retrieval(emb, positives, ks)),
    }


def word_similarity(model, pairs_path: str) -> dict:
    """SimLex-999 style: Spearman's rho between the gold scores and the cosine of the text tower's
    [CLS] features (before the projection) of the two words."""
    words1, words2, gold = annotations.read_word_pairs(pairs_path)
    vocab = sorted(set(words1) | set(words2))
    features = metrics.l2_normalize(model.text_cls_features(vocab))
    row = {w: i for i, w in enumerate(vocab)}
    cosine = [float(features[row[a]] @ features[row[b]]) for a, b in zip(words1, words2)]
    return {"num_pairs": len(gold), "spearman_rho": metrics.spearman_rho(cosine, gold)}
