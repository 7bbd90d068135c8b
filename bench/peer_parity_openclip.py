"""The open_clip side of bench/peer_parity.py; runs INSIDE the peer virtualenv (torch, open_clip).

    python peer_parity_openclip.py train --model_config CFG.json --logs DIR -- [open_clip_train args]
    python peer_parity_openclip.py embed --model_config CFG.json --checkpoint PT --pairs CSV --out NPZ

`train` registers the bench's model config with open_clip and runs open_clip's own trainer
(`open_clip_train.main.main`) unchanged. `embed` writes the L2-normalized embeddings of the
held-out pairs (open_clip's own validation preprocessing and tokenizer) to an .npz, scored by the
project's retrieval routine on the other side. Nothing here is imported by the project.
"""
import argparse
import csv
import json
import os
import sys


def register(model_config: str) -> str:
    import open_clip

    open_clip.add_model_config(model_config)
    return os.path.splitext(os.path.basename(model_config))[0]


def train(args, rest) -> None:
    from open_clip_train import main as open_clip_main

    register(args.model_config)
    open_clip_main.main(rest)


def embed(args) -> None:
    import numpy as np
    import open_clip
    import torch
    from PIL import Image

    name = register(args.model_config)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=args.checkpoint)
    tokenizer = open_clip.get_tokenizer(name)
    model.eval()
    with open(args.pairs, newline="") as f:
        rows = list(csv.DictReader(f))
    images, texts = [], []
    with torch.no_grad():
        for start in range(0, len(rows), 128):
            chunk = rows[start:start + 128]
            pixels = torch.stack([preprocess(Image.open(r["filepath"])) for r in chunk])
            images.append(model.encode_image(pixels, normalize=True).numpy())
            texts.append(model.encode_text(tokenizer([r["title"] for r in chunk]),
                                           normalize=True).numpy())
    np.savez(args.out, image=np.concatenate(images), text=np.concatenate(texts),
             logit_scale=float(model.logit_scale.exp()))
    print(json.dumps({"pairs": len(rows), "out": args.out}))


def main(argv) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("train", "embed"))
    parser.add_argument("--model_config", required=True)
    parser.add_argument("--checkpoint")
    parser.add_argument("--pairs")
    parser.add_argument("--out")
    own, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    train(args, rest) if args.command == "train" else embed(args)


if __name__ == "__main__":
    main(sys.argv[1:])
