import numpy as np
import pytest

from trainer.evaluation import annotations
from trainer.evaluation.linear_probe import linear_probe


def test_linear_probe_separable_and_c_selection():
    train = np.array([[0.0, 1.0], [0.1, 0.9], [0.2, 1.1], [1.0, 0.0], [0.9, 0.1], [1.1, 0.2]] * 3)
    labels = [0, 0, 0, 1, 1, 1] * 3
    test = np.array([[0.0, 2.0], [2.0, 0.0], [3.0, 0.1], [0.1, 3.0]])
    result = linear_probe(train, labels, test, [0, 1, 1, 0], c_values=(1.0,))
    assert result == {"top1": 1.0, "C": 1.0}
    swept = linear_probe(train, labels, test, [0, 1, 1, 0], c_values=(1e-6, 10.0))
    # C=1e-6 regularizes everything to chance on the validation split; C=10 separates it.
    assert swept == {"top1": 1.0, "C": 10.0}


def test_read_word_pairs(tmp_path):
    path = tmp_path / "simlex.txt"
    path.write_text("word1\tword2\tPOS\tSimLex999\tconc(w1)\nold\tnew\tA\t1.58\t2.72\nsmart\tintelligent\tA\t9.2\t1.75\n")
    assert annotations.read_word_pairs(str(path)) == (["old", "smart"], ["new", "intelligent"], [1.58, 9.2])
    bad = tmp_path / "bad.txt"
    bad.write_text("a\tb\tc\n")
    with pytest.raises(ValueError, match="word1 and word2"):
        annotations.read_word_pairs(str(bad))


def test_similarity_pairs_to_positives(tmp_path):
    path = tmp_path / "sis.csv"
    path.write_text("key1,key2,score\na,b,4.5\nb,c,2.0\nc,a,3.0\n")
    positives = annotations.positives_matrix(["a", "b", "c"], annotations.read_similarity_pairs(str(path)))
    assert positives.astype(int).tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="not in the data"):
        annotations.positives_matrix(["a", "b"], annotations.read_similarity_pairs(str(path)))
