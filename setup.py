"""ALIGN: curation (Apache Beam), near-duplicate removal, dual-encoder training and evaluation.

This file is also what Dataflow workers install (`--setup_file ./setup.py`), so it lists
everything a worker needs. Versions are pinned: tensorflow 2.21.0, tensorflow-text 2.21.1 and
apache-beam 2.77.0 co-install on Python 3.11 with numpy 2.4 and protobuf 6. `constraints.txt`
pins the whole resolved tree for reproducible installs (`pip install -c constraints.txt -e .`).
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "apache-beam[gcp]==2.77.0",  # [gcp]: GCS IO and the DataflowRunner
    "tensorflow==2.21.0",
    "tensorflow-text==2.21.1",  # WordPiece learner and BertTokenizer
    "keras==3.15.1",
    "keras-hub==0.32.0",  # BertBackbone for the text tower (trainer)
    "faiss-cpu==1.15.1",
    "imagehash==4.3.2",
    "pillow==12.3.0",
    "scikit-learn==1.9.1",
    "pyarrow==25.0.1",
    "numpy==2.4.6",
    "protobuf==6.33.6",
]

setup(
    name="align-curate",
    version="0.1.0",
    description="ALIGN (Jia et al., ICML 2021): noisy image/alt-text curation and dual-encoder training",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["pipeline*", "dedup*", "trainer*", "schemas*"]),
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest==9.2.0"]},
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
