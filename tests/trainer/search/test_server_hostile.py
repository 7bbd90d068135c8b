"""align-search serve against hostile requests (issue #10): every request gets an HTTP answer,
reflected input is escaped, body and pixel caps hold. Raw sockets, so headers are exactly as sent."""
import json
import logging
import socket
import struct
import threading
import uuid
import zlib

import pytest

from tests.trainer.evaluation import fixtures_data as fd
from tests.trainer.search.corpus import write_corpus
from trainer.evaluation.exported_model import ExportedModel
from trainer.search import cli
from trainer.search.index_store import SearchIndex
from trainer.search.server import MAX_UPLOAD_BYTES, make_server

XSS = "<script>alert(1)</script>"
QUOTE_XSS = "' onmouseover='alert(1)"


class Recording:
    """The model, recording every image it is asked to embed (what reached its decoder)."""

    def __init__(self, model):
        self.model, self.images = model, []

    def embed_images(self, images):
        self.images += list(images)
        return self.model.embed_images(images)

    def embed_texts(self, texts):
        return self.model.embed_texts(texts)


class Broken:
    def embed_texts(self, texts):
        raise RuntimeError("a bug in the model")


def _start(index, model):
    httpd = make_server(index, model, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def served(standin_export, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    shard = write_corpus(root / "00000.tar")
    assert cli.main(["build", "--model", standin_export, "--input", shard, "--input_format", "webdataset",
                     "--index_dir", str(root / "index")]) == 0
    index, model = SearchIndex(str(root / "index")), Recording(ExportedModel(standin_export))
    httpd = _start(index, model)
    yield httpd.server_address[1], index, model
    httpd.shutdown()
    httpd.server_close()


def raw(port: int, data: bytes):
    """Sends `data`, reads until the server closes -> (status, {header: value}, body). The socket
    timeout turns a server that waits for a body it should not read into a failure, not a hang."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split(" ")[1]), {**headers, ":status-line": lines[0]}, body


def post(port: int, path: str, body: bytes, content_type: str, length=None):
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
    if length != "omit":
        head += f"Content-Length: {len(body) if length is None else length}\r\n"
    return raw(port, head.encode("latin-1") + b"\r\n" + body)


def multipart(fields: dict):
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields.items():
        head = f'Content-Disposition: form-data; name="{name}"'
        if name == "image":
            head += '; filename="q.png"\r\nContent-Type: image/png'
        value = value if isinstance(value, bytes) else value.encode()
        body += f"--{boundary}\r\n{head}\r\n\r\n".encode() + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def get(port: int, target: str):
    return raw(port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode("latin-1"))


def assert_escaped(body: bytes, payload: str):
    assert payload.encode() not in body
    escaped = payload.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#x27;")
    assert escaped.encode() in body


def test_reflected_k_and_q_are_escaped(served):
    port = served[0]
    for payload in (XSS, QUOTE_XSS):
        quoted = payload.replace("<", "%3C").replace(">", "%3E").replace(" ", "+").replace("'", "%27")
        status, _, page = get(port, f"/?k={quoted}")  # no query: the form alone echoes k
        assert status == 200
        assert_escaped(page, payload)
        status, _, page = get(port, f"/?q=red&k={quoted}")  # k is not a number: the 400 page
        assert status == 400 and b"k must be a whole number" in page
        assert_escaped(page, payload)
        status, _, page = post(port, "/", *multipart({"q": "red", "k": payload}))
        assert status == 400
        assert_escaped(page, payload)
        status, _, page = post(port, "/", *multipart({"q": payload, "k": "2"}))
        assert status == 200 and page.count(b"class='hit'") == 2
        assert_escaped(page, payload)


def test_framework_and_header_errors_are_escaped(served):
    port = served[0]
    # An unknown method is answered by the framework's send_error: our page, nothing in the status line.
    status, headers, page = raw(port, f"{XSS} / HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 501 and headers["connection"] == "close" and "script" not in headers[":status-line"]
    assert_escaped(page, XSS)
    assert get(port, "/thumbs/000000/0.jpg%00")[0] == 404  # a NUL in a path is not a 500
    status, _, page = post(port, "/", b"", "text/plain", length=XSS)
    assert status == 400 and b"invalid Content-Length" in page
    assert_escaped(page, XSS)


@pytest.mark.parametrize("length,expected", [("-1", 400), ("abc", 400), ("1_0", 400), ("+5", 400), ("omit", 411)])
def test_bad_content_length(served, length, expected):
    # No body is sent: a server that still tried to read one (read(-1) = to EOF) would never answer.
    status, headers, body = post(served[0], "/api/search", b"", "application/x-www-form-urlencoded", length)
    assert status == expected and headers["connection"] == "close"
    assert "Content-Length" in json.loads(body)["error"]


def test_over_cap_body_refused_unread(served):
    length = 3 * MAX_UPLOAD_BYTES  # announced, never sent: the answer must come from the headers alone
    status, headers, page = post(served[0], "/", b"", "multipart/form-data; boundary=x", length)
    assert status == 413 and headers["connection"] == "close" and b"upload too large" in page
    status, headers, _ = raw(served[0], b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert status == 411 and headers["connection"] == "close"


def huge_png(width=10_000, height=10_000) -> bytes:
    """A 1x1 PNG whose header announces width x height (IHDR patched, CRC fixed): a few bytes
    that Pillow would try to decode as 100 Mpx, above the 89.5 Mpx cap."""
    png = bytearray(fd.png_bytes("red", (1, 1)))
    assert png[12:16] == b"IHDR"
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def test_pixel_bomb_upload_is_refused_before_the_model(served):
    port, _, model = served
    bomb = huge_png()
    status, _, page = post(port, "/", *multipart({"image": bomb, "q": "red"}))
    assert status == 413 and b"decompression_bomb" in page and b"class='hit'" not in page
    status, _, body = post(port, "/api/search", *multipart({"image": bomb}))
    assert status == 413 and "decompression_bomb" in json.loads(body)["error"]
    assert bomb not in model.images
    status, _, page = post(port, "/", *multipart({"image": fd.png_bytes("red"), "k": "1"}))
    assert status == 200 and b"src='data:image/jpeg;base64," in page  # preview via thumbnail_jpeg


@pytest.mark.parametrize("body,content_type", [
    (b"q=\xff\xfe", "application/x-www-form-urlencoded"),
    (b"q=%ff%fe", "application/x-www-form-urlencoded"),
    multipart({"q": b"\xff\xfe", "k": "1"}),
])
def test_non_utf8_form_is_400(served, body, content_type):
    status, _, page = post(served[0], "/", body, content_type)
    assert status == 400 and b"not UTF-8" in page
    status, _, body = post(served[0], "/api/search", body, content_type)
    assert status == 400 and "not UTF-8" in json.loads(body)["error"]
    assert get(served[0], "/api/search?q=%ff")[0] == 400


def test_unexpected_error_is_a_logged_500(served, caplog):
    httpd = _start(served[1], Broken())
    try:
        with caplog.at_level(logging.ERROR, logger="trainer.search.server"):
            status, headers, page = get(httpd.server_address[1], "/?q=red")
        assert status == 500 and headers["connection"] == "close" and b"internal server error" in page
        assert any(r.exc_info and "a bug in the model" in str(r.exc_info[1]) for r in caplog.records)
        assert get(httpd.server_address[1], "/")[0] == 200  # the server lives on
    finally:
        httpd.shutdown()
        httpd.server_close()
