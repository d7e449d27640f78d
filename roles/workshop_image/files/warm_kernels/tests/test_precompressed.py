"""The static files' gzip copies: which files get one, and that a real Tornado server sends the
copy only where it would have compressed the file whole (the real Jupyter server: molecule
workshop_image)."""

import asyncio
import gzip
import os

from tmpnb_warm_kernels import precompressed
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler, StaticFileHandler

SCRIPT = b"console.log('the file itself');\n" * 100  # 3.3 kB: compressible, above MIN_LENGTH


def test_the_build_copies_what_tornado_would_compress(tmp_path):
    (tmp_path / "lab").mkdir()
    files = {
        "lab/main.js": SCRIPT,
        "lab/style.css": SCRIPT,
        "lab/schema.json": SCRIPT,
        "lab/icon.svg": SCRIPT,
        "lab/tiny.js": b"x" * (precompressed.MIN_LENGTH - 1),
        "lab/font.woff2": SCRIPT,  # compressed by its format
        "lab/logo.png": SCRIPT,
        "lab/old.js.gz": gzip.compress(SCRIPT),  # a gzip file is sent as it is
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)

    count, before, after = precompressed.write_copies([tmp_path])

    copies = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.gz"))
    assert copies == [
        "lab/icon.svg.gz",
        "lab/main.js.gz",
        "lab/old.js.gz",
        "lab/schema.json.gz",
        "lab/style.css.gz",
    ]
    assert count == 4 and before == 4 * len(SCRIPT) and 0 < after < before
    assert gzip.decompress((tmp_path / "lab/main.js.gz").read_bytes()) == SCRIPT


def test_a_second_build_keeps_fresh_copies_and_rewrites_stale_ones(tmp_path):
    script, copy = tmp_path / "main.js", tmp_path / "main.js.gz"
    script.write_bytes(SCRIPT)
    precompressed.write_copies([tmp_path])
    first = copy.stat().st_mtime_ns
    precompressed.write_copies([tmp_path])
    assert copy.stat().st_mtime_ns == first

    script.write_bytes(b"changed();\n" * 200)
    os.utime(copy, ns=(first - 10**9, first - 10**9))  # the copy is older than the file now
    precompressed.write_copies([tmp_path])
    assert gzip.decompress(copy.read_bytes()) == b"changed();\n" * 200


def static_app(directory, compress_response=False):
    """A Tornado app with one static route, precompressed; the copy of main.js holds other text
    than the file, so that a test knows which one was sent. jupyter_server does not compress
    its answers; with `compress_response`, Tornado would compress what the copy does not."""
    (directory / "main.js").write_bytes(SCRIPT)
    (directory / "main.js.gz").write_bytes(gzip.compress(b"sent from the copy"))
    app = Application(
        [(r"/static/(.*)", StaticFileHandler, {"path": str(directory)})],
        compress_response=compress_response,
    )
    assert precompressed.install(app) == 1
    return app


def fetch(app, path, method="GET", **headers):
    """One request to `app` served on a real socket; the answer as sent (not decompressed)."""

    async def serve_and_fetch():
        socket, port = bind_unused_port()
        server = HTTPServer(app)
        server.add_sockets([socket])
        client = AsyncHTTPClient(force_instance=True)
        try:
            return await client.fetch(
                f"http://127.0.0.1:{port}{path}",
                method=method,
                headers=headers,
                decompress_response=False,
                raise_error=False,
            )
        finally:
            client.close()
            server.stop()

    return asyncio.run(serve_and_fetch())


GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def test_a_client_accepting_gzip_gets_the_copy_as_it_is(tmp_path):
    answer = fetch(static_app(tmp_path), "/static/main.js", **GZIP)
    assert answer.code == 200
    assert answer.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(answer.body) == b"sent from the copy"
    assert answer.headers["Vary"] == "Accept-Encoding"
    assert (
        answer.headers["Content-Type"]
        == fetch(static_app(tmp_path), "/static/main.js").headers["Content-Type"]
    )  # the file's type (text/javascript or application/javascript, by Python's version)


def test_the_etag_is_the_file_s_so_a_revalidation_answers_304(tmp_path):
    app = static_app(tmp_path)
    plain = fetch(app, "/static/main.js")
    copied = fetch(app, "/static/main.js", **GZIP)
    assert copied.headers["Etag"] == plain.headers["Etag"]
    again = fetch(app, "/static/main.js", **GZIP, **{"If-None-Match": plain.headers["Etag"]})
    assert again.code == 304


def test_head_gives_the_copy_s_length(tmp_path):
    answer = fetch(static_app(tmp_path), "/static/main.js", method="HEAD", **GZIP)
    assert answer.headers["Content-Encoding"] == "gzip"
    assert int(answer.headers["Content-Length"]) == (tmp_path / "main.js.gz").stat().st_size


def test_without_gzip_or_with_a_range_the_file_itself_is_sent(tmp_path):
    app = static_app(tmp_path)
    plain = fetch(app, "/static/main.js")
    assert plain.code == 200 and plain.body == SCRIPT
    assert "Content-Encoding" not in plain.headers
    # A range is of the file: Tornado may compress those ten bytes itself, not send the copy.
    part = fetch(app, "/static/main.js", **GZIP, Range="bytes=0-9")
    assert part.code == 206
    encoded = part.headers.get("Content-Encoding") == "gzip"
    assert (gzip.decompress(part.body) if encoded else part.body) == SCRIPT[:10]


def test_a_stale_copy_is_not_sent(tmp_path):
    app = static_app(tmp_path)
    stale = (tmp_path / "main.js").stat().st_mtime_ns - 10**9
    os.utime(tmp_path / "main.js.gz", ns=(stale, stale))
    answer = fetch(app, "/static/main.js", **GZIP)
    assert "Content-Encoding" not in answer.headers and answer.body == SCRIPT


def test_a_file_without_a_copy_is_sent_as_before(tmp_path):
    app = static_app(tmp_path)
    (tmp_path / "other.js").write_bytes(SCRIPT)
    answer = fetch(app, "/static/other.js", **GZIP)
    assert answer.body == SCRIPT
    assert "Content-Encoding" not in answer.headers and "Vary" not in answer.headers


def test_with_tornado_s_compression_on_the_copy_is_sent_and_vary_said_once(tmp_path):
    app = static_app(tmp_path, compress_response=True)
    answer = fetch(app, "/static/main.js", **GZIP)
    assert gzip.decompress(answer.body) == b"sent from the copy"
    assert answer.headers.get_list("Vary") == ["Accept-Encoding"]
    stale = (tmp_path / "main.js").stat().st_mtime_ns - 10**9
    os.utime(tmp_path / "main.js.gz", ns=(stale, stale))
    compressed_here = fetch(app, "/static/main.js", **GZIP)
    assert gzip.decompress(compressed_here.body) == SCRIPT


class RewritingHandler(StaticFileHandler):
    """Like JupyterLab's ThemesHandler: its answer is not the file's bytes."""

    def get_content(self, abspath, start=None, end=None):
        return b"rewritten"

    def get_content_size(self):
        return len(b"rewritten")


def test_install_swaps_only_handlers_that_send_files_as_they_are_in_every_router(tmp_path):
    app = Application([(r"/static/(.*)", StaticFileHandler, {"path": str(tmp_path)})])
    app.add_handlers(".*$", [(r"/ext/(.*)", StaticFileHandler, {"path": str(tmp_path)})])
    app.add_handlers(".*$", [(r"/api", RequestHandler), (r"/themes/(.*)", RewritingHandler)])
    assert precompressed.install(app) == 2
    targets = [
        rule.target for router in app.default_router.rules[:-1] for rule in router.target.rules
    ]
    targets += [rule.target for rule in app.wildcard_router.rules]
    assert RequestHandler in targets and RewritingHandler in targets
    assert StaticFileHandler not in targets


def test_a_handler_that_makes_its_own_content_is_left_alone(tmp_path):
    (tmp_path / "theme.css").write_bytes(SCRIPT)
    (tmp_path / "theme.css.gz").write_bytes(gzip.compress(b"sent from the copy"))
    app = Application([(r"/themes/(.*)", RewritingHandler, {"path": str(tmp_path)})])
    assert precompressed.install(app) == 0
    answer = fetch(app, "/themes/theme.css", **GZIP)
    assert answer.body == b"rewritten"


class KernelResourceHandler(StaticFileHandler):
    """Like jupyter_server's KernelSpecResourceHandler: its own route arguments."""

    def initialize(self, path):
        self.roots = path

    def get(self, kernel_name, path, include_body=True):
        self.root = f"{self.roots}/{kernel_name}"
        return super().get(path, include_body=include_body)

    def head(self, kernel_name, path):
        return self.get(kernel_name, path, include_body=False)


def test_a_handler_with_its_own_route_arguments_sends_the_copy_too(tmp_path):
    (tmp_path / "python3").mkdir()
    static_app(tmp_path / "python3")  # main.js and its copy, in the kernel's folder
    app = Application(
        [(r"/kernelspecs/([^/]+)/(.*)", KernelResourceHandler, {"path": str(tmp_path)})]
    )
    assert precompressed.install(app) == 1
    answer = fetch(app, "/kernelspecs/python3/main.js", **GZIP)
    assert answer.code == 200
    assert gzip.decompress(answer.body) == b"sent from the copy"
    head = fetch(app, "/kernelspecs/python3/main.js", method="HEAD", **GZIP)
    assert head.code == 200 and head.headers["Content-Encoding"] == "gzip"
