"""Readers of the small annotation files: SimLex-999 word pairs and intra-modal (CxC) similarity pairs."""
import csv
import io
from typing import Dict, List, Sequence, Tuple

import numpy as np

from trainer.evaluation import files

# Crisscrossed Captions (Parekh et al. 2021, section 5): pairs rated >= 3 (out of 5) are positives.
CXC_POSITIVE_MIN_SCORE = 3.0


def _open_text(path: str):
    """The file as text for csv (newline=""): local, or gs:// and other URLs (trainer/evaluation/files)."""
    if not files.is_url(path):
        return open(path, encoding="utf-8", newline="")
    return io.StringIO(files.read_text(path), newline="")


def read_word_pairs(path: str) -> Tuple[List[str], List[str], List[float]]:
    """SimLex-999 format: tab-separated, header with `word1`, `word2` and `SimLex999` columns.

    A file with another score column name (e.g. WordSim-353's) is accepted when its third column
    is numeric; the header row is required.
    """
    with _open_text(path) as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path}: empty word-pair file")
    header = [h.strip() for h in rows[0]]
    if "word1" not in header or "word2" not in header:
        raise ValueError(f"{path}: header must name word1 and word2 columns, got {header}")
    score_col = header.index("SimLex999") if "SimLex999" in header else 2
    i1, i2 = header.index("word1"), header.index("word2")
    words1, words2, scores = [], [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            scores.append(float(row[score_col]))
        except (ValueError, IndexError) as e:
            raise ValueError(f"{path}:{line_no}: no numeric score in column {score_col}") from e
        words1.append(row[i1])
        words2.append(row[i2])
    return words1, words2, scores


def read_similarity_pairs(path: str) -> List[Tuple[str, str, float]]:
    """Intra-modal annotations as CSV/TSV lines `key1,key2,score` (a header row is skipped)."""
    delimiter = "\t" if path.endswith((".tsv", ".txt")) else ","
    pairs = []
    with _open_text(path) as f:
        for row in csv.reader(f, delimiter=delimiter):
            if len(row) < 3:
                continue
            try:
                pairs.append((row[0], row[1], float(row[2])))
            except ValueError:
                continue  # header
    if not pairs:
        raise ValueError(f"{path}: no `key1,key2,score` rows")
    return pairs


def positives_matrix(
    keys: Sequence[str], pairs: Sequence[Tuple[str, str, float]], min_score: float = CXC_POSITIVE_MIN_SCORE
) -> np.ndarray:
    """[N, N] bool over `keys`: symmetric, True where a pair is rated >= min_score."""
    position: Dict[str, int] = {k: i for i, k in enumerate(keys)}
    missing = {k for a, b, _ in pairs for k in (a, b) if k not in position}
    if missing:
        raise ValueError(f"{len(missing)} annotated keys are not in the data, e.g. {sorted(missing)[:3]}")
    out = np.zeros((len(keys), len(keys)), dtype=bool)
    for a, b, score in pairs:
        if score >= min_score:
            out[position[a], position[b]] = out[position[b], position[a]] = True
    return out
