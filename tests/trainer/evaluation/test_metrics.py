"""Every metric against a case computed by hand (in the comments)."""
import numpy as np
import pytest

from trainer.evaluation import metrics


def test_rank_counts_negatives_at_or_above_best_positive():
    scores = np.array([[0.9, 0.5, 0.7, 0.1],
                       [0.2, 0.2, 0.3, 0.2]])
    positives = np.array([[False, False, True, True],   # best positive 0.7; 0.9 above -> rank 1
                          [True, True, False, False]])  # best positive 0.2; 0.3 above, 0.2 tied -> rank 2
    assert metrics.rank_of_first_positive(scores, positives).tolist() == [1, 2]


def test_query_without_positive_never_hits():
    ranks = metrics.rank_of_first_positive(np.array([[0.3, 0.1]]), np.array([[False, False]]))
    assert ranks.tolist() == [2]


def test_ties_are_pessimistic_so_a_collapsed_model_scores_zero():
    scores = np.ones((3, 3))
    assert metrics.recall_at_k(scores, np.eye(3, dtype=bool), (1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 1.0}


def test_image_text_retrieval_with_several_captions_per_image():
    # 2 images (A, B), 4 captions: texts 0,1 describe A; texts 2,3 describe B. Unit vectors in 2-D.
    image_emb = np.array([[1.0, 0.0], [0.0, 1.0]])
    text_emb = metrics.l2_normalize(np.array([[0.6, 0.8],    # A's caption, closer to B
                                              [1.0, 0.0],    # A's caption, exactly A
                                              [0.8, 0.6],    # B's caption, closer to A
                                              [0.6, 0.8]]))  # B's caption, tied with text 0
    result = metrics.image_text_retrieval(image_emb, text_emb, ["A", "A", "B", "B"], ["A", "B"], (1, 2))
    # image A scores [0.6, 1.0, 0.8, 0.6]: best positive (text 1) is first -> hit at 1.
    # image B scores [0.8, 0.0, 0.6, 0.8]: best positive text 3 = 0.8 tied with negative text 0
    #   -> rank 1 (pessimistic): miss at 1, hit at 2.
    assert result["image_to_text"] == {1: 0.5, 2: 1.0}
    # text 0 (A): A 0.6 < B 0.8 -> rank 1; text 1 (A): rank 0; text 2 (B): B 0.6 < A 0.8 -> rank 1;
    # text 3 (B): B 0.8 > A 0.6 -> rank 0. R@1 = 2/4, R@2 = 4/4.
    assert result["text_to_image"] == {1: 0.5, 2: 1.0}


def test_chance_recall():
    assert metrics.chance_recall(10, 1, 1) == pytest.approx(0.1)
    # 1 - C(8, 2) / C(10, 2) = 1 - 28/45
    assert metrics.chance_recall(10, 2, 2) == pytest.approx(17 / 45)
    assert metrics.chance_recall(3, 1, 5) == 1.0


def test_top_k_accuracy_with_tie():
    scores = np.array([[0.1, 0.9, 0.3],   # label 1: top-1 hit
                       [0.5, 0.5, 0.1],   # label 0 tied with class 1: miss at 1, hit at 2
                       [0.7, 0.2, 0.1]])  # label 2: last
    assert metrics.top_k_accuracy(scores, [1, 0, 2], (1, 2)) == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3)}


def test_mean_per_class_accuracy_and_majority_baseline():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])  # always predicts class 0
    labels = [0, 0, 0, 1]
    assert metrics.top_k_accuracy(scores, labels, (1,)) == {1: 0.75}
    # class 0: 3/3, class 1: 0/1 -> (1 + 0) / 2
    assert metrics.mean_per_class_accuracy(scores, labels, (1, 2)) == {1: 0.5, 2: 1.0}
    assert metrics.majority_baseline([2, 0, 2, 1, 2], (1, 2)) == {1: 0.6, 2: 0.8}


def test_knn_recall_and_vote():
    index = metrics.l2_normalize(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]))
    index_labels = [0, 1, 1, 1]
    query = metrics.l2_normalize(np.array([[1.0, 0.05], [0.05, 1.0]]))
    # query 0 (label 0): nearest is index 0 (label 0) -> R@1 hit.
    # query 1 (label 0): neighbours 2, 3 (label 1) then 1, then 0 -> rank 3: hit only at 4.
    assert metrics.knn_recall(query, [0, 0], index, index_labels, (1, 3, 4)) == {1: 0.5, 3: 0.5, 4: 1.0}
    # 3-NN vote for query 0: index 0 (label 0, cos ~0.999), index 1 (label 1, ~0.998), index 3
    # (label 1, ~0.16): label 1 wins -> miss. 1-NN vote: hit.
    assert metrics.knn_vote_accuracy(query[:1], [0], index, index_labels, k=3) == 0.0
    assert metrics.knn_vote_accuracy(query[:1], [0], index, index_labels, k=1) == 1.0


def test_intra_modal_excludes_the_query_and_queries_without_positives():
    emb = metrics.l2_normalize(np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]]))
    positives = np.zeros((4, 4), dtype=bool)
    positives[0, 2] = positives[2, 0] = True  # only items 0 and 2 are annotated as similar
    # query 0: others score 0.8 (1), 0.6 (2), 0.0 (3) -> positive 2 at rank 1.
    # query 2: others score 0.6 (0), 0.96 (1), 0.8 (3) -> positive 0 at rank 2.
    assert metrics.intra_modal_retrieval(emb, positives, (1, 2, 3)) == {1: 0.0, 2: 0.5, 3: 1.0}


def test_intra_modal_without_annotations_is_an_error():
    with pytest.raises(ValueError, match="no query has an annotated positive"):
        metrics.intra_modal_retrieval(np.eye(2), np.eye(2, dtype=bool))


def test_spearman_rho_with_ties():
    # x ranks [1, 2.5, 2.5, 4], y ranks [1, 2, 3, 4]; centred: [-1.5, 0, 0, 1.5] and
    # [-1.5, -0.5, 0.5, 1.5]; rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert metrics.spearman_rho([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(np.sqrt(0.9))
    assert metrics.spearman_rho([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="constant"):
        metrics.spearman_rho([1, 1, 1], [1, 2, 3])
