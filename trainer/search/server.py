"""`align-search serve`: a small local page over an index (query box, image upload, result grid).

Routes: GET /?q=TEXT&k=K (text query), GET /?like=ROW[&q=TEXT] (an indexed image, optionally plus
text), POST / multipart {q, image, k} (upload), GET /api/search (same parameters, JSON),
POST /api/search (multipart, JSON), GET /thumbs/NNNNNN/I.jpg. Listens on 127.0.0.1 by default.

Every request gets an answer: malformed ones a 4xx page (JSON on /api/search), unexpected
failures a logged 500; everything reflected from the request is HTML-escaped.
"""
import base64
import email.parser
import email.policy
import email.utils
import html
import json
import logging
import os
import re
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from schemas.image_decode import DECOMPRESSION_BOMB, ImageDecodeError, thumbnail_jpeg
from trainer.evaluation import files
from trainer.search.index_store import SearchIndex
from trainer.search.queries import query_embedding

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_FORM_FIELDS = 50
DEFAULT_K = 24
MAX_K = 200
BODY_TIMEOUT_S = 60  # a client that announces more body than it sends must not hold a thread forever

log = logging.getLogger(__name__)

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


class RequestError(Exception):
    """A request answered with `status` and this message instead of results. `close`: the body
    was not (fully) read, so the connection cannot carry another request."""

    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status = status
        self.close = close


def esc(value) -> str:
    """Everything reflected into a page goes through here (quote=True: safe in attributes too)."""
    return html.escape(str(value), quote=True)


def parse_form(text: str) -> dict:
    """application/x-www-form-urlencoded (or a query string) -> {name: last value}; 400 for
    percent-escapes that are not UTF-8 or too many fields."""
    try:
        pairs = urllib.parse.parse_qs(text, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise RequestError(400, "the form is not UTF-8 text") from None
    except ValueError:  # max_num_fields exceeded
        raise RequestError(400, f"more than {MAX_FORM_FIELDS} form fields") from None
    return {k: v[-1] for k, v in pairs.items()}


def parse_multipart(content_type: str, body: bytes) -> dict:
    """multipart/form-data -> {name: str} with the standard email parser; the `image` field stays
    bytes. Other fields must be UTF-8 text (400 otherwise), whether sent as files or not."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        name = email.utils.collapse_rfc2231_value(name)  # name*=utf-8''... arrives as a tuple
        payload = part.get_payload(decode=True) or b""
        if name == "image":
            fields[name] = payload
            continue
        try:
            fields[name] = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, f"form field {name!r} is not UTF-8 text") from None
    return fields


def render_page(index: SearchIndex, query: dict, hits, error: Optional[str] = None,
                preview: Optional[str] = None) -> str:
    q = query.get("q") if isinstance(query.get("q"), str) else ""
    text = esc(q)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>ALIGN search</title>"
             f"<style>{STYLE}</style></head><body><h2>ALIGN search <small class='key'>"
             f"{len(index)} images</small></h2>",
             "<form method='post' action='/' enctype='multipart/form-data'>"
             f"<input type='text' name='q' value='{text}' placeholder='describe an image, or add text to an image'>"
             "<input type='file' name='image' accept='image/*'>"
             f"<input type='number' name='k' value='{esc(query.get('k') or DEFAULT_K)}' min='1' max='{MAX_K}'>"
             "<button type='submit'>Search</button></form>"]
    if error:
        parts.append(f"<p class='error'>{esc(error)}</p>")
    if hits is not None:
        described = []
        if preview:
            described.append(f"<img src='{esc(preview)}' alt='query image'>")
        if q:
            described.append(f"&ldquo;{text}&rdquo;")
        parts.append(f"<p class='query'>Query: {' + '.join(described)} &mdash; top {len(hits)}</p><div class='grid'>")
        for hit in hits:
            parts.append(
                f"<div class='hit'><a href='/?like={int(hit.row)}'><img src='/thumbs/{esc(hit.thumbnail)}' "
                f"alt='{esc(hit.key)}'></a><div class='score'>{hit.score:.3f}</div>"
                f"<div>{esc(hit.text)}</div><div class='key'>{esc(hit.key)}</div></div>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def _int_param(params: dict, name: str, default=None) -> int:
    value = params.get(name) or default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RequestError(400, f"{name} must be a whole number, not {str(value)[:40]!r}") from None


def run_query(index: SearchIndex, model, params: dict):
    """-> (hits, image preview URL or None). ValueError for an empty or bad query, RequestError
    for an upload the project's decoder refuses (413 for a decompression bomb)."""
    from trainer.evaluation.exported_model import UnreadableImageError

    k = max(1, min(_int_param(params, "k", DEFAULT_K), MAX_K))
    image = params.get("image") or None
    if image is not None and not isinstance(image, bytes):
        raise RequestError(400, "image must be an uploaded file")
    preview = None
    if params.get("like") not in (None, ""):
        row = _int_param(params, "like")
        emb = query_embedding(model, params.get("q"), image_embedding=index.reconstruct(row))
        preview = "/thumbs/" + index.items[row]["thumbnail"]
    else:
        try:
            # query_embedding decodes with schemas.image_decode first: a refused upload never reaches the model.
            emb = query_embedding(model, params.get("q"), image=image)
        except ImageDecodeError as e:
            status = 413 if e.name == DECOMPRESSION_BOMB else 400
            raise RequestError(status, f"the uploaded file is not a readable image ({e.name})") from e
        except UnreadableImageError as e:  # decodable by Pillow but not by the model (e.g. some formats)
            raise ValueError(f"the uploaded file is not a readable image ({str(e).split(': ', 1)[-1]})") from e
        thumb = thumbnail_jpeg(image, 64) if image else None
        if thumb:
            preview = "data:image/jpeg;base64," + base64.b64encode(thumb).decode("ascii")
    return index.search(emb, k), preview


# The names build_index gives thumbnails (NNNNNN/I.jpg): all a remote index's /thumbs/ serves.
THUMBNAIL_NAME = re.compile(r"[0-9]{6}/[0-9]{1,9}\.jpg")


def read_thumbnail(index: SearchIndex, name: str, thumbs_root: Optional[str]) -> Optional[bytes]:
    """The bytes of thumbs/NAME, or None (answered 404). A local index: any file that resolves
    inside INDEX_DIR/thumbs (`thumbs_root`, its realpath); a remote one (gs://...), which has no
    symlinks to resolve: only names of the NNNNNN/I.jpg form, read through tf.io.gfile."""
    if "\0" in name:
        return None
    if thumbs_root is None:
        if not THUMBNAIL_NAME.fullmatch(name):
            return None
        try:
            return files.read_bytes(files.join(index.index_dir, "thumbs", name))
        except Exception:  # noqa: BLE001 - each file system names a missing object its own way
            return None
    path = os.path.realpath(os.path.join(thumbs_root, name))
    if not path.startswith(thumbs_root + os.sep) or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        return f.read()


def make_handler(index: SearchIndex, model):
    thumbs_root = (None if files.is_url(index.index_dir)
                   else os.path.realpath(os.path.join(index.index_dir, "thumbs")))

    class Handler(BaseHTTPRequestHandler):
        timeout = BODY_TIMEOUT_S  # socket timeout for reading the request (and writing the answer)

        def log_message(self, fmt, *args):  # quiet: one line per request on stderr is noise here
            pass

        def _send(self, code: int, body: bytes, content_type: str, close: bool = False):
            self._responded = True
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.close_connection = True
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, code: int, message: str, api: bool, close: bool = False):
            if api:
                return self._send(code, json.dumps({"error": message}).encode(), "application/json", close)
            page = render_page(index, {}, None, message)
            self._send(code, page.encode("utf-8"), "text/html; charset=utf-8", close)

        def send_error(self, code, message=None, explain=None):
            """The framework's own errors (bad request line, too many headers, unknown method):
            our page, escaped with quote=True, and no request text in the status line."""
            self.log_error("code %d, message %s", code, message)
            short, long = self.responses.get(code, ("Error", ""))
            self._error(code, f"{code} {short}: {message or long}", api=False, close=True)

        def _guarded(self, route):
            """Runs `route`; a RequestError becomes its 4xx answer, anything else a logged 500."""
            self._responded = False
            api = self.path.split("?", 1)[0] == "/api/search"
            try:
                route()
            except RequestError as e:
                self._error(e.status, str(e), api, close=e.close)
            except (BrokenPipeError, ConnectionResetError):  # the client left: nobody to answer
                self.close_connection = True
            except TimeoutError:
                self.close_connection = True
                if not self._responded:
                    self._error(408, "the request body did not arrive in time", api, close=True)
            except Exception:  # noqa: BLE001 - a bug must cost one 500, not the connection
                log.exception("align-search serve: %s %s failed", self.command, self.path[:200])
                self.close_connection = True
                if not self._responded:
                    self._error(500, "internal server error (logged on the server)", api, close=True)

        def _answer(self, params: dict, api: bool):
            hits, error, status, preview = None, None, 200, None
            try:
                if api or any(params.get(n) not in (None, "", b"") for n in ("q", "image", "like")):
                    hits, preview = run_query(index, model, params)
            except RequestError as e:
                error, status = str(e), e.status
            except ValueError as e:  # empty query, unreadable image, bad row
                error, status = str(e), 400
            if api:
                body = {"error": error} if error else {"results": [h.__dict__ for h in hits]}
                return self._send(status, json.dumps(body).encode(), "application/json")
            page = render_page(index, params, hits, error, preview)
            self._send(status, page.encode("utf-8"), "text/html; charset=utf-8")

        def do_GET(self):
            self._guarded(self._get)

        def do_POST(self):
            self._guarded(self._post)

        def _get(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path.startswith("/thumbs/"):
                data = read_thumbnail(index, urllib.parse.unquote(url.path[len("/thumbs/"):]), thumbs_root)
                if data is None:
                    return self._send(404, b"not found", "text/plain")
                return self._send(200, data, "image/jpeg")
            if url.path not in ("/", "/api/search"):
                return self._send(404, b"not found", "text/plain")
            self._answer(parse_form(url.query), api=url.path == "/api/search")

        def _content_length(self) -> int:
            """The announced body size, checked before a byte of the body is read."""
            if self.headers.get("Transfer-Encoding"):
                raise RequestError(411, "chunked bodies are not supported: send a Content-Length", close=True)
            values = [v.strip() for v in self.headers.get_all("Content-Length") or []]
            if not values:
                raise RequestError(411, "a POST needs a Content-Length header", close=True)
            # Digits only: int() would also take "-1", "+5" and "1_000".
            if len(set(values)) > 1 or not re.fullmatch(r"[0-9]{1,18}", values[0]):
                raise RequestError(400, f"invalid Content-Length {values[0][:40]!r}", close=True)
            length = int(values[0])
            if length > MAX_UPLOAD_BYTES:
                raise RequestError(413, f"upload too large ({length} bytes; the limit is {MAX_UPLOAD_BYTES})",
                                   close=True)
            return length

        def _post(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path not in ("/", "/api/search"):
                return self._send(404, b"not found", "text/plain", close=True)  # the body stays unread
            length = self._content_length()
            body = self.rfile.read(length)
            if len(body) < length:
                raise RequestError(400, "the body is shorter than its Content-Length", close=True)
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("multipart/form-data"):
                params = parse_multipart(content_type, body)
            else:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise RequestError(400, "the form is not UTF-8 text") from None
                params = parse_form(text)
            self._answer(params, api=url.path == "/api/search")

    return Handler


def make_server(index: SearchIndex, model, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), make_handler(index, model))
