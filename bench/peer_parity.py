"""Side by side with open_clip: same data, same model shape, same steps and batch, one retrieval routine.

    .venv/bin/python bench/peer_parity.py [--corpus /work/real_corpus] [--work /tmp/align_parity] \
        [--config b0_parity_cpu] [--steps 370] [--peer_epochs 4] [--set model.text.pooling=cls ...]

1. Data (cached in --work): the shared real corpus (built with ../shared/corpus when --corpus is
   missing), curated with docs/RESULTS.md's flags, split with trainer.evaluation.holdout (10 %,
   emoji variants grouped): 5,918 training pairs, 683 held out. Both trainers read the same pixels
   and captions: the curated JPEGs and texts, written out as files + CSV for open_clip.
2. Ours: `align-train --config CONFIG --steps N --global_batch_size 64` (+ --set overrides), with
   the in-loop evaluation on the held-out pairs, then the export.
3. Peer: open_clip 3.3's own trainer (`open_clip_train.main`, torch CPU, fp32) in a virtualenv
   the bench creates under --cache (never a dependency of the project): timm `efficientnet_b0`
   (no pretrained weights, avg pool, linear projection) at 64 px, its text transformer (width 128,
   2 layers, 2 heads, context 32), 128-d embeddings, AdamW lr 1e-3, weight decay 1e-5,
   --peer_warmup steps, batch 64, --peer_epochs epochs (92 steps each).
4. Both exports embed the same held-out files and captions; `trainer.evaluation.tasks.
   retrieval_from_embeddings` (what `align-eval retrieval` runs) scores both. One table: R@1/5/10
   both ways, embedding health, final training loss per direction, median pairs/s, wall.

Figures go into docs/BENCHMARKS.md ("Learning parity with open_clip") with the command.
"""
import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
PEER_PACKAGES = [  # torch/torchvision releases this machine's pip can install offline (CPU use)
    "torch==2.14.1", "torchvision==0.29.1", "open_clip_torch==3.3.0", "timm==1.0.31", "pandas"]
PEER_MODEL = {  # the bench's shape on open_clip's side (see module docstring)
    "embed_dim": 128,
    "vision_cfg": {"timm_model_name": "efficientnet_b0", "timm_model_pretrained": False,
                   "timm_pool": "avg", "timm_proj": "linear", "image_size": 64},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
}
CURATE_FLAGS = ["--min_image_side_px", "63", "--min_words", "1", "--vocab_size", "8000",
                "--num_shards", "8"]  # docs/RESULTS.md


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({done.returncode}):\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def prepare_data(corpus: str, work: str) -> dict:
    """Curated TFRecords, the split, and the same pairs as files + CSV (cached)."""
    if not os.path.exists(os.path.join(corpus, "webdataset")):
        log(f"building the shared corpus into {corpus}")
        run([sys.executable, os.path.join(REPO, "..", "shared", "corpus", "build_real_corpus.py"),
             corpus])
    curated, split = os.path.join(work, "curated"), os.path.join(work, "split")
    if not os.path.exists(os.path.join(curated, "stats.json")):
        log("curating (docs/RESULTS.md flags)")
        run([sys.executable, "-m", "pipeline.curate", "--input",
             os.path.join(corpus, "webdataset", "*.tar"), "--input_format", "webdataset",
             "--output_dir", curated, *CURATE_FLAGS], cwd=REPO)
    if not os.path.exists(os.path.join(split, "split.json")):
        log("splitting 10 % held out")
        run([sys.executable, "-m", "trainer.evaluation.holdout", "--input",
             os.path.join(curated, "tfrecords", "train-*.tfrecord"), "--out_dir", split,
             "--heldout_percent", "10", "--meta", os.path.join(corpus, "webdataset", "*.tar"),
             "--group_field", "near_duplicate_of_code,code"], cwd=REPO)
    data = {"vocab": os.path.join(curated, "vocab.txt"),
            "train_glob": os.path.join(split, "train-*.tfrecord"),
            "heldout_glob": os.path.join(split, "heldout-*.tfrecord")}
    for part in ("train", "heldout"):
        data[f"{part}_csv"] = write_pairs_csv(data[f"{part}_glob"], os.path.join(work, "files", part))
    return data


def write_pairs_csv(pattern: str, directory: str) -> str:
    """The curated pairs as JPEG files + CSV (filepath, title, image_id), in record order."""
    path = directory + ".csv"
    if os.path.exists(path):
        return path
    from trainer.evaluation.datasets import read_tfrecord_pairs

    os.makedirs(directory, exist_ok=True)
    with open(path + ".tmp", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath", "title", "image_id", "key"])
        for i, pair in enumerate(read_tfrecord_pairs(pattern)):
            image_path = os.path.join(directory, f"{i:06d}.jpg")
            with open(image_path, "wb") as out:
                out.write(pair.load_image())
            writer.writerow([image_path, pair.text, pair.image_id, pair.key])
    os.replace(path + ".tmp", path)
    return path


def read_pairs_csv(path: str) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def score(image_emb, text_emb, pairs: list) -> dict:
    """The project's retrieval routine on per-pair embeddings (pairs sharing an image: one target)."""
    from trainer.evaluation import tasks

    return tasks.retrieval_from_pair_embeddings(image_emb, text_emb, [p["image_id"] for p in pairs])


def run_ours(data: dict, work: str, args) -> dict:
    workdir = os.path.join(work, f"ours_{args.label}")
    cmd = [os.path.join(os.path.dirname(sys.executable), "align-train"), "--config", args.config,
           "--data", data["train_glob"], "--vocab", data["vocab"], "--workdir", workdir,
           "--steps", str(args.steps), "--global_batch_size", "64", "--eval_data",
           data["heldout_glob"], "--eval_every_steps", str(args.eval_every_steps)]
    for override in args.set:
        cmd += ["--set", override]
    shutil.rmtree(workdir, ignore_errors=True)
    log("ours: " + " ".join(cmd[1:]))
    started = time.perf_counter()
    done = run(cmd, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    wall = time.perf_counter() - started
    lines = done.stdout.splitlines()
    with open(os.path.join(workdir, "train_stdout.log"), "w") as f:
        f.write(done.stdout)
    rates = [float(m.group(1)) for m in map(re.compile(r"\| ([\d.]+) pairs/s").search, lines) if m]
    losses = [(float(m.group(1)), float(m.group(2))) for m in
              map(re.compile(r"\(i2t ([\d.]+), t2i ([\d.]+)\)").search, lines) if m]
    for line in lines:
        if line.startswith("eval step"):
            log("ours " + line)
    from trainer.evaluation.exported_model import ExportedModel

    pairs = read_pairs_csv(data["heldout_csv"])
    model = ExportedModel(os.path.join(workdir, "export"))
    image_emb = model.embed_images([open(p["filepath"], "rb").read() for p in pairs])
    text_emb = model.embed_texts([p["title"] for p in pairs])
    return {"name": f"ours ({args.config}{', ' + ', '.join(args.set) if args.set else ''})",
            "retrieval": score(image_emb, text_emb, pairs), "wall_s": wall,
            "median_pairs_per_s": statistics.median(rates[1:] or rates),
            "final_loss_per_direction": sum(losses[-1]) / 2 if losses else float("nan")}


def ensure_peer_venv(cache: str) -> str:
    venv = os.path.join(cache, "open_clip_venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, ".installed")):
        log(f"creating the peer virtualenv {venv} (torch CPU use, open_clip 3.3)")
        run(["python3", "-m", "venv", venv])  # a system interpreter, not the project's venv
        run([python, "-m", "pip", "install", "-q", *PEER_PACKAGES])
        open(os.path.join(venv, ".installed"), "w").close()
    return python


def run_peer(data: dict, work: str, args) -> dict:
    python = ensure_peer_venv(args.cache)
    peer_dir = os.path.join(work, f"peer_{args.peer_epochs}ep")
    config_path = os.path.join(work, "align_parity_b0.json")
    with open(config_path, "w") as f:
        json.dump(PEER_MODEL, f, indent=2)
    helper = os.path.join(REPO, "bench", "peer_parity_openclip.py")
    checkpoint = os.path.join(peer_dir, "peer", "checkpoints", f"epoch_{args.peer_epochs}.pt")
    shutil.rmtree(peer_dir, ignore_errors=True)
    cmd = [python, helper, "train", "--model_config", config_path, "--",
           "--train-data", data["train_csv"], "--dataset-type", "csv", "--csv-separator", ",",
           "--csv-img-key", "filepath", "--csv-caption-key", "title",
           "--model", "align_parity_b0", "--batch-size", "64", "--epochs", str(args.peer_epochs),
           "--lr", "1e-3", "--wd", "1e-5", "--warmup", str(args.peer_warmup), "--workers", "1",
           "--precision", "fp32", "--device", "cpu", "--logs", peer_dir, "--name", "peer",
           "--save-frequency", str(args.peer_epochs), "--seed", "0",
           "--log-every-n-steps", "10", "--report-to", ""]
    log("peer: open_clip_train.main " + " ".join(cmd[5:]))
    started = time.perf_counter()
    done = run(cmd, cwd=work)
    wall = time.perf_counter() - started
    text = done.stdout + done.stderr
    with open(os.path.join(peer_dir, "train_stdout.log"), "w") as f:
        f.write(text)
    rates = [float(x) for x in re.findall(r"Batch \(t\): [\d.]+, ([\d.]+)/s", text)]
    losses = [float(x) for x in re.findall(r"Contrastive_loss: ([\d.]+)", text)]
    out = os.path.join(peer_dir, "heldout_embeddings.npz")
    run([python, helper, "embed", "--model_config", config_path, "--checkpoint", checkpoint,
         "--pairs", data["heldout_csv"], "--out", out], cwd=work)
    import numpy as np

    emb = np.load(out)
    return {"name": f"open_clip 3.3 ({args.peer_epochs} epochs)",
            "retrieval": score(emb["image"], emb["text"], read_pairs_csv(data["heldout_csv"])),
            "wall_s": wall, "median_pairs_per_s": statistics.median(rates[1:] or rates),
            "final_loss_per_direction": losses[-1] if losses else float("nan")}


def table(results: list) -> str:
    head = ("| run | image->text R@1/5/10 | text->image R@1/5/10 | eff. rank img/txt | "
            "final train loss per direction | median pairs/s | wall |")
    lines = [head, "|" + "---|" * 7]
    for r in results:
        ret = r["retrieval"]
        i2t, t2i, health = ret["image_to_text"], ret["text_to_image"], ret["embedding_health"]
        lines.append(
            f"| {r['name']} | {i2t['R@1']:.1%} / {i2t['R@5']:.1%} / {i2t['R@10']:.1%} | "
            f"{t2i['R@1']:.1%} / {t2i['R@5']:.1%} / {t2i['R@10']:.1%} | "
            f"{health['image']['effective_rank']:.1f} / {health['text']['effective_rank']:.1f} | "
            f"{r['final_loss_per_direction']:.2f} | {r['median_pairs_per_s']:.0f} | "
            f"{r['wall_s'] / 60:.1f} min |")
    chance = results[0]["retrieval"]["chance"]
    lines.append(f"| chance | {chance['image_to_text']['R@1']:.2%} / "
                 f"{chance['image_to_text']['R@5']:.2%} / {chance['image_to_text']['R@10']:.2%} "
                 f"| same | | | | |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", default="/work/real_corpus")
    p.add_argument("--work", default="/tmp/align_parity")
    p.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "align_bench"))
    p.add_argument("--config", default="b0_parity_cpu", help="our trainer's config")
    p.add_argument("--set", action="append", default=[], help="override of our config (repeatable)")
    p.add_argument("--label", default="default", help="name of our run's workdir")
    p.add_argument("--steps", type=int, default=370)
    p.add_argument("--eval_every_steps", type=int, default=0)
    p.add_argument("--peer_epochs", type=int, default=4)
    p.add_argument("--peer_warmup", type=int, default=37)
    p.add_argument("--skip_peer", action="store_true")
    p.add_argument("--skip_ours", action="store_true")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    data = prepare_data(args.corpus, args.work)
    results = []
    if not args.skip_peer:
        results.append(run_peer(data, args.work, args))
    if not args.skip_ours:
        results.append(run_ours(data, args.work, args))
    print(table(results))
    out = os.path.join(args.work, f"peer_parity_{args.label}.json")
    with open(out, "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=2)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
