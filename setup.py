"""ALIGN: curation (Apache Beam), near-duplicate removal, dual-encoder training and evaluation.

Install sets (ranges here; `constraints.txt` pins the whole resolved tree, use it with `-c`):

    pip install -c constraints.txt .            # = [curate]: curation + weight-free dedup, no TensorFlow
    pip install -c constraints.txt '.[curate]'  # same (explicit name; what Dataflow workers need)
    pip install -c constraints.txt '.[train]'   # + TensorFlow, tensorflow-text, Keras, KerasHub
    pip install -c constraints.txt '.[eval]'    # + what align-eval / align-search add to [train]
    pip install -c constraints.txt '.[all,test]'  # everything + pytest (`make test`, `make demo`)

The base install (`install_requires`) IS the curation set on purpose: Dataflow's `--setup_file
./setup.py` builds an sdist and pip-installs it on every worker *without extras*, so the base must be
what a worker needs and nothing heavier (no TensorFlow). The pornography scorer
(`--unsafe_model_path`) and a SavedModel dedup embedder run TensorFlow on the workers: use
`[curate,train]` (or the container's TF variant, docs/PIPELINE.md) for those.

TPU VMs (tensorflow-tpu 2.20): constraints-tpu.txt; CUDA GPUs: constraints-gpu.txt (docs/TRAINING.md).
Python: 3.11 and 3.12 (tensorflow 2.20/2.21, tensorflow-text 2.20.1/2.21.1, apache-beam 2.77 and
faiss-cpu publish cp311 and cp312 wheels; `make test` runs on 3.11, `.[all,test]` with
constraints.txt resolves on 3.12.1 to cp312 wheels, `.ci/curate_light.sh` passes on 3.12.1). Not 3.13
yet: the wheels exist, but apache-beam[gcp] 2.77 needs google-apitools>=0.5.35 there and
constraints.txt pins 0.5.31 (the 3.11 resolution), so the pinned install does not resolve.
"""
from setuptools import find_packages, setup

# The vocabulary learner's own dependencies. pipeline/wordpiece_learner.py is TF-free and needs only
# numpy today; if it ever needs a package (e.g. HF `tokenizers>=0.23,<0.24`, pinned 0.23.3 in
# constraints.txt), it goes HERE so that [curate] and the Dataflow container get it.
VOCAB_LEARNER = []

CURATE = [
    "apache-beam[gcp]>=2.77,<3",  # [gcp]: GCS IO and the DataflowRunner; Beam pins the rest of its tree
    "faiss-cpu>=1.15,<2",  # dedup: k-means, nearest centroids
    "imagehash>=4.3,<5",  # dedup: pHash pass for exact copies
    "pillow>=12.1,<13",  # image decode/resize everywhere (apache-beam 2.77 needs <13)
    "scipy>=1.17,<2",  # dedup/pixel_embedder.py (ndimage)
    "pyarrow>=25,<26",  # --input_format parquet (apache-beam 2.77 needs <26)
    "numpy>=2.4,<2.5",  # apache-beam 2.77 needs <2.5
    "protobuf>=6.31,<7",  # apache-beam 2.77 needs <7, tensorflow 2.21 >=6.31.1
    "google-crc32c>=1.7,<2",  # schemas/tfrecord_reader.py (TFRecord framing without TensorFlow)
    "threadpoolctl>=3.1,<4",  # dedup/beam_stage.py (BLAS threads per worker)
] + VOCAB_LEARNER

TRAIN = [
    "tensorflow>=2.20,<2.22",  # 2.21 in constraints.txt; 2.20 = the Cloud TPU line (constraints-tpu.txt)
    "tensorflow-text>=2.20.1,<2.22",  # BertTokenizer in the model; must match tensorflow's minor version
    "keras>=3.15,<4",
    "keras-hub>=0.32,<0.33",  # BertBackbone for the text tower
    "h5py>=3.11,<3.15",  # trainer/image_tower.py reads Keras .weights.h5 (tensorflow 2.21 needs <3.15)
    "numpy>=2.4,<2.5",
    "pillow>=12.1,<13",
]

EVAL = TRAIN + [
    "scikit-learn>=1.9,<2",  # align-eval linear-probe (brings scipy, used by metrics)
    "scipy>=1.17,<2",
    "faiss-cpu>=1.15,<2",  # align-search index, k-NN
    "tqdm>=4.66,<5",  # align-search build progress
]

EXTRAS = {
    "curate": CURATE,
    "train": TRAIN,
    "eval": EVAL,
    "test": ["pytest>=9.2,<10", "packaging>=24,<27"],  # packaging: tests/test_packaging.py
}
EXTRAS["all"] = sorted(set(CURATE + TRAIN + EVAL))

setup(
    name="align-curate",
    version="0.1.0",
    description="ALIGN (Jia et al., ICML 2021): noisy image/alt-text curation and dual-encoder training",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["pipeline*", "dedup*", "trainer*", "schemas*"]),
    include_package_data=True,
    install_requires=CURATE,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "align-curate=pipeline.curate:main",
            "align-dedup=dedup.cli:main",
            "align-train=trainer.train:main",
            "align-eval=trainer.evaluation.cli:main",
            "align-search=trainer.search.cli:main",
        ]
    },
)
