"""`align-search serve`: a small local page over an index (query box, image upload, result grid).

Routes: GET /?q=TEXT&k=K (text query), GET /?like=ROW[&q=TEXT] (an indexed image, optionally plus
text), POST / multipart {q, image, k} (upload), GET /api/search (same parameters, JSON),
POST /api/search (multipart, JSON), GET /thumbs/NNNNNN/I.jpg. Listens on 127.0.0.1 by default.
"""
import base64
import email.parser
import email.policy
import html
import json
import os
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from trainer.search.index_store import SearchIndex
from trainer.search.queries import query_embedding

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_K = 24

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa;color:#222}
form{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-bottom:16px}
input[type=text]{width:420px;padding:8px;font-size:16px}
button{padding:8px 16px;font-size:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}
.hit{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;font-size:12px}
.hit img{width:100%;height:128px;object-fit:contain;background:#fff}
.score{font-weight:bold}.key{color:#777}.query img{height:64px;vertical-align:middle}
.error{color:#b00020;font-weight:bold}
"""


def parse_multipart(content_type: str, body: bytes) -> dict:
    """multipart/form-data -> {name: str or bytes (file fields)} with the standard email parser."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        fields[name] = payload if part.get_filename() is not None else payload.decode("utf-8")
    return fields


def render_page(index: SearchIndex, query: dict, hits, error: Optional[str] = None) -> str:
    text = html.escape(query.get("q") or "")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>ALIGN search</title>"
             f"<style>{STYLE}</style></head><body><h2>ALIGN search <small class='key'>"
             f"{len(index)} images</small></h2>",
             "<form method='post' action='/' enctype='multipart/form-data'>"
             f"<input type='text' name='q' value='{text}' placeholder='describe an image, or add text to an image'>"
             "<input type='file' name='image' accept='image/*'>"
             f"<input type='number' name='k' value='{query.get('k', DEFAULT_K)}' min='1' max='200'>"
             "<button type='submit'>Search</button></form>"]
    if error:
        parts.append(f"<p class='error'>{html.escape(error)}</p>")
    if hits is not None:
        described = []
        if query.get("image_preview"):
            described.append(f"<img src='{query['image_preview']}' alt='query image'>")
        if query.get("q"):
            described.append(f"&ldquo;{text}&rdquo;")
        parts.append(f"<p class='query'>Query: {' + '.join(described)} &mdash; top {len(hits)}</p><div class='grid'>")
        for hit in hits:
            parts.append(
                f"<div class='hit'><a href='/?like={hit.row}'><img src='/thumbs/{html.escape(hit.thumbnail)}' "
                f"alt='{html.escape(hit.key)}'></a><div class='score'>{hit.score:.3f}</div>"
                f"<div>{html.escape(hit.text)}</div><div class='key'>{html.escape(hit.key)}</div></div>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def run_query(index: SearchIndex, model, params: dict):
    """-> (hits, image preview data URI or None). ValueError for an empty or bad query."""
    k = max(1, min(int(params.get("k") or DEFAULT_K), 200))
    image = params.get("image") or None
    preview = None
    if params.get("like") not in (None, ""):
        row = int(params["like"])
        emb = query_embedding(model, params.get("q"), image_embedding=index.reconstruct(row))
        preview = "/thumbs/" + index.items[row]["thumbnail"]
    else:
        from trainer.evaluation.exported_model import UnreadableImageError

        try:
            emb = query_embedding(model, params.get("q"), image=image)
        except UnreadableImageError as e:
            raise ValueError(f"the uploaded file is not a readable image ({str(e).split(': ', 1)[-1]})") from e
        if image:
            preview = "data:image/jpeg;base64," + base64.b64encode(_preview(image)).decode("ascii")
    return index.search(emb, k), preview


def _preview(image: bytes) -> bytes:
    from trainer.search.index_store import make_thumbnail

    return make_thumbnail(image, 64)


def make_handler(index: SearchIndex, model):
    thumbs_root = os.path.realpath(os.path.join(index.index_dir, "thumbs"))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet: one line per request on stderr is noise here
            pass

        def _send(self, code: int, body: bytes, content_type: str):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, params: dict, api: bool):
            hits, error, status = None, None, 200
            try:
                if api or any(params.get(n) not in (None, "", b"") for n in ("q", "image", "like")):
                    hits, params["image_preview"] = run_query(index, model, params)
            except ValueError as e:  # empty query, unreadable image, bad row
                error, status = str(e), 400
            if api:
                body = {"error": error} if error else {"results": [h.__dict__ for h in hits]}
                return self._send(status, json.dumps(body).encode(), "application/json")
            page = render_page(index, params, hits, error)
            self._send(status, page.encode("utf-8"), "text/html; charset=utf-8")

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path.startswith("/thumbs/"):
                path = os.path.realpath(os.path.join(thumbs_root, urllib.parse.unquote(url.path[len("/thumbs/"):])))
                if not path.startswith(thumbs_root + os.sep) or not os.path.isfile(path):
                    return self._send(404, b"not found", "text/plain")
                with open(path, "rb") as f:
                    return self._send(200, f.read(), "image/jpeg")
            if url.path not in ("/", "/api/search"):
                return self._send(404, b"not found", "text/plain")
            params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            self._answer(params, api=url.path == "/api/search")

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_UPLOAD_BYTES:
                return self._send(413, b"upload too large", "text/plain")
            body = self.rfile.read(length)
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                params = parse_multipart(content_type, body)
            else:
                params = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8")).items()}
            self._answer(params, api=url.path == "/api/search")

    return Handler


def make_server(index: SearchIndex, model, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), make_handler(index, model))
