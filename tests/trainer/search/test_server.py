"""align-search serve: HTTP API with urllib, and the page rendered by headless Chromium."""
import io
import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
import uuid

import pytest
from PIL import Image

from tests.trainer.evaluation import fixtures_data as fd
from tests.trainer.search.corpus import write_corpus
from trainer.evaluation.exported_model import ExportedModel
from trainer.search.index_store import SearchIndex
from trainer.search import cli
from trainer.search.server import make_server

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(standin_export, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    shard = write_corpus(root / "00000.tar")
    assert cli.main(["build", "--model", standin_export, "--input", shard, "--input_format", "webdataset",
                     "--index_dir", str(root / "index")]) == 0
    httpd = make_server(SearchIndex(str(root / "index")), ExportedModel(standin_export), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post_multipart(url, fields):
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        if isinstance(value, bytes):
            head = f'Content-Disposition: form-data; name="{name}"; filename="q.png"\r\nContent-Type: image/png'
        else:
            head, value = f'Content-Disposition: form-data; name="{name}"', value.encode()
        body += f"--{boundary}\r\n{head}\r\n\r\n".encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_api_text_upload_and_like(server):
    status, body = _get(server + "/api/search?q=green&k=1")
    assert status == 200 and [r["key"] for r in json.loads(body)["results"]] == ["k1"]
    status, body = _post_multipart(server + "/api/search", {"image": fd.png_bytes("red"), "q": "blue", "k": "1"})
    assert status == 200 and json.loads(body)["results"][0]["key"] == "k5"
    status, body = _get(server + "/api/search?like=2&k=1")
    assert json.loads(body)["results"][0]["key"] == "k2"


def test_page_thumbnails_and_errors(server):
    status, page = _get(server + "/")
    assert status == 200 and b"<form" in page and b"type='file'" in page and b"class='grid'" not in page
    status, page = _post_multipart(server + "/", {"q": "yellow", "image": b"", "k": "3"})
    assert status == 200 and page.count(b"class='hit'") == 3 and b"yellow sun" in page
    status, thumb = _get(server + "/thumbs/000000/0.jpg")
    assert status == 200 and Image.open(io.BytesIO(thumb)).format == "JPEG"
    assert _get(server + "/thumbs/../manifest.json")[0] == 404
    status, body = _post_multipart(server + "/api/search", {"image": b"garbage"})
    assert status == 400 and "not a readable image" in json.loads(body)["error"]
    status, body = _get(server + "/api/search?q=")
    assert status == 400 and "empty query" in json.loads(body)["error"]


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed")
def test_page_in_headless_chromium(server, tmp_path):
    screenshot = os.environ.get("ALIGN_SEARCH_SCREENSHOT") or str(tmp_path / "search.png")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1000,600",
                        "--virtual-time-budget=5000", f"--screenshot={screenshot}", server + "/?q=red&k=4"],
                       check=True, capture_output=True, timeout=120)
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1000, 600)
    colours = image.getcolors(maxcolors=1_000_000)
    # The red thumbnail (rank 1) and the half red half blue one (rank 2) were fetched and painted.
    reds = sum(n for n, (r, g, b) in colours if r > 200 and g < 60 and b < 60)
    blues = sum(n for n, (r, g, b) in colours if b > 200 and r < 60 and g < 60)
    assert reds > 5_000 and blues > 2_000
