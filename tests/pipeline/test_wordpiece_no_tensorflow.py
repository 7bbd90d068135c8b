"""The vocabulary step runs without TensorFlow / tensorflow_text (the `[curate]` install): a child
process where importing either raises ImportError imports pipeline.vocab, learns a vocabulary,
splits non-Latin texts and runs BuildVocab on the FnApiRunner."""
import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent(r'''
    import json, sys, tempfile, os

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tensorflow_text"):
                raise ModuleNotFoundError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, NoTensorFlow())

    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    import pipeline.vocab as vocab
    from pipeline import wordpiece_learner

    out = {"library": wordpiece_learner.tensorflow_text_learner() is None}
    out["learned"] = vocab.learn_wordpiece({"red": 30, "bus": 20, "buses": 12, "the": 50}, 40)
    fn = vocab.BasicTokenizeFn()
    out["words"] = vocab.basic_tokenize(["Héllo, RED-bus!", "一只猫 Привет, МИР"],
                                        make_tokenizer=fn._real_tokenizer)
    path = os.path.join(tempfile.mkdtemp(), "vocab.txt")
    with beam.Pipeline(runner=FnApiRunner()) as p:
        _ = (p | beam.Create(["A red bus", "Красный автобус", "the red car"] * 12)
             | vocab.BuildVocab(vocab_size=80, output_path=path, min_piece_count=2))
    out["file"] = open(path, encoding="utf-8").read().splitlines()
    out["tf_modules"] = sorted(m for m in sys.modules
                               if m.split(".")[0] in ("tensorflow", "tensorflow_text"))
    print("RESULT " + json.dumps(out, ensure_ascii=True))
''')


def test_vocab_step_without_tensorflow():
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    assert out["library"] is True  # tensorflow_text's own learner was not found
    assert out["tf_modules"] == []
    assert out["learned"] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
        "b", "d", "e", "h", "r", "s", "t", "u", "the", "red", "bus", "buses",
        "##b", "##d", "##e", "##h", "##r", "##s", "##t", "##u"]
    assert out["words"] == ["hello", ",", "red", "-", "bus", "!", "一", "只", "猫", "привет", ",",
                            "мир"]
    vocab = out["file"]
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert {"red", "красныи", "автобус", "##а", "а"} <= set(vocab)
