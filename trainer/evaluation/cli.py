"""`align-eval TASK --model WORKDIR/export ...`: the paper's evaluations; JSON out plus a table.

Tasks: retrieval (5.1), zeroshot (5.2), knn (section 6), linear-probe (5.3), intramodal (CxC),
word-similarity (SimLex-999), finetune (5.1, writes a new export). The JSON goes to --output_json
(default: WORKDIR/eval/TASK.json, next to the export).
"""
import argparse
import sys
import time

from trainer.evaluation import datasets, files, report

TASKS = ("retrieval", "zeroshot", "knn", "linear-probe", "intramodal", "word-similarity", "finetune")


def _ks(text: str):
    return tuple(int(k) for k in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="align-eval", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="task", required=True)

    def add(name, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--model", required=True, help="the export directory (WORKDIR/export)")
        p.add_argument("--output_json", help="default: WORKDIR/eval/TASK.json")
        p.add_argument("--batch_size", type=int, default=64, help="examples per model call")
        return p

    p = add("retrieval", "image-text retrieval Recall@K, both directions (paper 5.1)")
    p.add_argument("--tfrecords", help="glob of curated TFRecords (captions grouped by image/sha256)")
    p.add_argument("--karpathy_json", help="dataset_coco.json / dataset_flickr30k.json")
    p.add_argument("--image_root", help="directory of the Karpathy-split images")
    p.add_argument("--split", default="test", help="Karpathy split (test, val, train, restval)")
    p.add_argument("--ks", type=_ks, default=(1, 5, 10))

    p = add("zeroshot", "zero-shot classification top-1/top-5 (paper 5.2)")
    p.add_argument("--class_folder", required=True, help="ROOT/<class>/<images>")
    p.add_argument("--class_names", help="file with one prompt name per class (sorted dir order)")
    p.add_argument("--prompt_ensembling", choices=("on", "off", "both"), default="on",
                   help="on: 80 CLIP templates averaged; off: 'a photo of a {}.'; both: report both")

    for name, help_text in (("knn", "k-NN Recall@K of image embeddings (paper section 6)"),
                            ("linear-probe", "logistic regression on frozen image embeddings (5.3)")):
        p = add(name, help_text)
        p.add_argument("--train_folder", required=True, help="class folder of the index / training images")
        p.add_argument("--eval_folder", required=True, help="class folder of the queries / test images")
        if name == "knn":
            p.add_argument("--ks", type=_ks, default=(1, 5, 10))
            p.add_argument("--vote_k", type=int, default=20, help="neighbours voting in the k-NN classifier")
        else:
            p.add_argument("--C", type=lambda s: [float(c) for c in s.split(",")], default=[1.0],
                           help="inverse L2 strength(s); several: chosen on 20%% of the training set")

    p = add("intramodal", "image-to-image or text-to-text retrieval (Crisscrossed Captions)")
    p.add_argument("--modality", choices=("image", "text"), required=True)
    p.add_argument("--pairs", required=True, help="annotations: key1,key2,score lines (CSV or TSV)")
    p.add_argument("--data", required=True, help="the items: glob/dir of --input_format")
    p.add_argument("--input_format", choices=("tfrecord", "webdataset", "image_folder"), default="tfrecord")
    p.add_argument("--min_score", type=float, default=3.0, help="pairs rated >= this are positives")
    p.add_argument("--ks", type=_ks, default=(1, 5, 10))

    p = add("word-similarity", "Spearman's rho on a SimLex-999-format word-pair file")
    p.add_argument("--pairs", required=True, help="TSV with word1, word2 and SimLex999 columns")

    p = add("finetune", "fine-tune for retrieval (paper 5.1) and write a new export")
    p.add_argument("--data", required=True, help="glob of curated TFRecords to fine-tune on")
    p.add_argument("--workdir", required=True, help="new WORKDIR (checkpoints and export/)")
    p.add_argument("--recipe", choices=("flickr30k", "mscoco"), default=None,
                   help="the paper's 5.1 step count when --steps is not given: flickr30k 3000, mscoco 6000")
    p.add_argument("--steps", type=int, default=None, help="fine-tuning steps (overrides --recipe)")
    p.add_argument("--global_batch_size", type=int, default=None, help="default 2048 (paper 5.1)")
    p.add_argument("--peak_learning_rate", type=float, default=None,
                   help="default 1e-5 (paper 5.1), decayed linearly to 0 at the last step")
    p.add_argument("--warmup_steps", type=int, default=None,
                   help="default 0: the paper mentions no warm-up for fine-tuning")
    return parser


def default_output(model_dir: str, task: str) -> str:
    """WORKDIR/eval/TASK.json next to WORKDIR/export, on the export's file system (gs://...)."""
    return files.join(files.dirname(files.absolute(model_dir.rstrip("/"))), "eval", f"{task}.json")


def run_task(args, model, errors=None) -> dict:
    """`errors`: a list receiving the unreadable input pairs left out (datasets.ReadError)."""
    if args.task == "retrieval":
        from trainer.evaluation.tasks import retrieval

        if bool(args.tfrecords) == bool(args.karpathy_json):
            raise ValueError("give exactly one of --tfrecords or --karpathy_json (with --image_root)")
        if args.tfrecords:
            pairs = datasets.read_tfrecord_pairs(args.tfrecords, errors)
            data = datasets.retrieval_set_from_pairs(datasets.decodable_pairs(pairs, errors))
        else:
            if not args.image_root:
                raise ValueError("--karpathy_json needs --image_root")
            data = datasets.read_karpathy_split(args.karpathy_json, args.image_root, args.split)
        return retrieval(model, data, args.ks)
    from trainer.evaluation import tasks

    if args.task == "zeroshot":
        data = datasets.read_class_folder(args.class_folder, args.class_names)
        return tasks.zero_shot(model, data, args.prompt_ensembling)
    if args.task in ("knn", "linear-probe"):
        train, test = datasets.read_class_folder(args.train_folder), datasets.read_class_folder(args.eval_folder)
        if args.task == "knn":
            return tasks.knn(model, train, test, args.ks, args.vote_k)
        return tasks.linear_probe(model, train, test, args.C)
    if args.task == "intramodal":
        pairs = list(datasets.read_pairs(args.data, args.input_format, errors))
        if args.modality == "image":
            pairs = datasets.decodable_pairs(pairs, errors)
        items = [p.load_image() for p in pairs] if args.modality == "image" else [p.text for p in pairs]
        keys = [p.key for p in pairs]
        return tasks.intra_modal(model, keys, items, args.pairs, args.modality, args.min_score, args.ks)
    if args.task == "word-similarity":
        return tasks.word_similarity(model, args.pairs)
    raise ValueError(f"unknown task {args.task}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from trainer.evaluation.exported_model import ExportedModel, ModelLoadError, check_export_dir

    errors = []
    try:
        if args.task == "finetune":
            from trainer.evaluation.finetune import run_finetune

            result = run_finetune(args)
        else:
            check_export_dir(args.model)
            started = time.time()
            model = ExportedModel(args.model, batch_size=args.batch_size)
            result = run_task(args, model, errors)
            result["seconds"] = round(time.time() - started, 1)
    except (ModelLoadError, ValueError, FileNotFoundError, ImportError, datasets.ImageReadError,
            *files.remote_file_errors()) as e:
        if errors:  # first: the pairs left out may be why the task failed (annotated keys missing)
            print(datasets.errors_warning(f"align-eval {args.task}", errors), file=sys.stderr)
        print(f"align-eval {args.task}: error: {e}", file=sys.stderr)
        return 2
    payload = {"task": args.task, "model": args.model, "result": result,
               "read_errors": datasets.summarize_errors(errors)}
    output = args.output_json or (
        files.join(args.workdir, "finetune.json") if args.task == "finetune" else default_output(args.model, args.task))
    report.write_json(output, payload)
    if errors:
        print(datasets.errors_warning(f"align-eval {args.task}", errors, f"{output} (read_errors)"), file=sys.stderr)
    print(report.format_table(f"align-eval {args.task}  ({args.model})", result))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
