"""`align-search build|query|serve`: cross-modal search over an exported ALIGN model.

  align-search build --model WORKDIR/export --input 'shards/*.tar' --input_format webdataset --index_dir IDX
  align-search query --index_dir IDX --text "a red car" [--image photo.jpg] [--k 10] [--json]
  align-search serve --index_dir IDX [--port 8080]   # then open http://127.0.0.1:8080/
The model used by query and serve is the one recorded at build time unless --model is given.
"""
import argparse
import json
import sys

FORMATS = ("tfrecord", "webdataset", "image_folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="align-search", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="embed a corpus into a faiss index (resumable)")
    b.add_argument("--model", required=True, help="the export directory (WORKDIR/export)")
    b.add_argument("--input", required=True, help="TFRecord or webdataset glob, or an image folder")
    b.add_argument("--input_format", choices=FORMATS, required=True)
    b.add_argument("--index_dir", required=True)
    b.add_argument("--chunk_size", type=int, default=256, help="images per resumable chunk")
    b.add_argument("--batch_size", type=int, default=64, help="images per model call")
    b.add_argument("--thumbnail_px", type=int, default=128, help="longer side of the stored thumbnails")
    b.add_argument("--overwrite", action="store_true", help="discard an existing index in --index_dir")
    for name, help_text in (("query", "top-k images for a text, an image, or both"),
                            ("serve", "local web page over the index")):
        q = sub.add_parser(name, help=help_text)
        q.add_argument("--index_dir", required=True)
        q.add_argument("--model", help="default: the model the index was built with")
        if name == "query":
            q.add_argument("--text", help="query text")
            q.add_argument("--image", help="query image file (with --text: image + text query)")
            q.add_argument("--k", type=int, default=10)
            q.add_argument("--json", action="store_true", help="print JSON instead of a table")
        else:
            q.add_argument("--host", default="127.0.0.1", help="bind address (default: local only)")
            q.add_argument("--port", type=int, default=8080)
    return parser


def _load_model(path: str):
    from trainer.evaluation.exported_model import ExportedModel, check_export_dir

    check_export_dir(path)
    return ExportedModel(path)


def _model_path(path: str) -> str:
    from trainer.evaluation.files import absolute

    return absolute(path)  # a local path made absolute; gs:// kept (abspath would give ./gs:/...)


def _build(args) -> None:
    from trainer.evaluation import files
    from trainer.evaluation.datasets import read_pairs
    from trainer.search.index_store import build_index

    read_errors = []
    pairs = read_pairs(args.input, args.input_format, read_errors)  # a bad glob fails here, not after loading the model
    model = _load_model(args.model)
    total = None
    if args.input_format == "image_folder":
        total = sum(1 for _ in read_pairs(args.input, args.input_format))
    settings = {"model": _model_path(args.model), "source": args.input, "input_format": args.input_format}
    manifest = build_index(model, pairs, args.index_dir, settings, args.chunk_size, args.thumbnail_px,
                           total=total, overwrite=args.overwrite, read_errors=read_errors)
    print(f"indexed {manifest['count']} images (dim {manifest['embedding_dim']}) into {args.index_dir}; "
          f"unreadable and skipped: {manifest['num_unreadable']} (listed in manifest.json)")
    if manifest["num_unreadable"]:
        by_error = ", ".join(f"{k}: {v}" for k, v in manifest["unreadable_by_error"].items())
        print(f"align-search build: warning: {manifest['num_unreadable']} unreadable input pair(s) left out "
              f"({by_error}); listed under `unreadable` in {files.join(args.index_dir, 'manifest.json')}",
              file=sys.stderr)


def _open(args):
    from trainer.search.index_store import SearchIndex

    index = SearchIndex(args.index_dir)
    return index, _load_model(args.model or index.manifest["model"])


def _query(args) -> None:
    from trainer.search.queries import query_embedding

    if not args.text and not args.image:
        raise ValueError("give --text, --image, or both")
    index, model = _open(args)
    image = None
    if args.image:
        from schemas.input_files import read_image_path

        image, error = read_image_path(args.image)  # local or gs://; bounded in size, never a FIFO
        if error:
            raise ValueError(f"{args.image}: {error}")
    hits = index.search(query_embedding(model, args.text, image=image), args.k)
    if args.json:
        print(json.dumps([h.__dict__ for h in hits], ensure_ascii=False, indent=1))
        return
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:>3}  {hit.score:7.4f}  {hit.key:<24}  {hit.text}")


def _serve(args) -> None:
    from trainer.search.server import make_server

    index, model = _open(args)
    server = make_server(index, model, args.host, args.port)
    print(f"serving {len(index)} images on http://{args.host}:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from trainer.evaluation.exported_model import ModelLoadError
    from trainer.evaluation.files import remote_file_errors
    from trainer.search.index_store import SearchIndexError

    try:
        {"build": _build, "query": _query, "serve": _serve}[args.command](args)
    except (ModelLoadError, SearchIndexError, ValueError, FileNotFoundError, IsADirectoryError,
            *remote_file_errors()) as e:
        print(f"align-search {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
