"""Static files sent gzip-compressed, from a copy written when the image was built.

A Notebook 7 page load fetches 74 static files, 5.9 MiB, and jupyter_server sends them as they
are: it does not compress its answers (Tornado's `compress_response` is off), and a tmpnb-style
deployment has no nginx in front to do it. So every visitor downloads 6 MiB before the notebook
shows, and a room of 50 on one Wi-Fi 300 MiB at the same moment. Compressing per request would
cost the visitor's own server CPU after the click. The files are fixed in the image, so the
build compresses them once (`python -m tmpnb_warm_kernels.precompressed`, in the Dockerfile
after the last pip step): a `<file>.gz` beside every file that Tornado's own compression would
take (a compressible type, at least MIN_LENGTH bytes), at gzip's best level.

At the server's start the extension swaps each static handler of the server for a subclass
(`handler_class`) that sends the copy, with `Content-Encoding: gzip`, when the client accepts
gzip and asks for the whole file (no Range), and says `Vary: Accept-Encoding` for every file
that has a copy. The ETag, Last-Modified and Content-Type stay those of the file itself, as with
Tornado's compression. In every other case (no copy, a copy older than its file, a Range, a
client without gzip) the server's own handler answers as before.
"""

import gzip
import mimetypes
import os
import sys
from pathlib import Path

# Tornado's own rule (web.GZipContentEncoding): text/* and these, from MIN_LENGTH bytes.
COMPRESSIBLE_TYPES = {
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/atom+xml",
    "application/json",
    "application/xhtml+xml",
    "image/svg+xml",
}
MIN_LENGTH = 1024
SUFFIX = ".gz"


def compressible(path):
    """Would Tornado compress this file's answer? (By its type as StaticFileHandler gives it.)"""
    kind, encoding = mimetypes.guess_type(str(path))
    if encoding is not None or kind is None:
        return False  # already compressed (x.js.gz), or sent as application/octet-stream
    return kind.startswith("text/") or kind in COMPRESSIBLE_TYPES


def static_roots(prefix=sys.prefix):
    """Where the image's static files are: share/jupyter (lab, labextensions) and every
    installed package's `static` folder (notebook, jupyter_server)."""
    prefix = Path(prefix)
    roots = [prefix / "share" / "jupyter"]
    roots += sorted(prefix.glob("lib/python3*/site-packages/*/static"))
    return [root for root in roots if root.is_dir()]


def write_copies(roots):
    """A `.gz` beside every compressible file of `roots`, unless an up-to-date one is there.
    Returns (files compressed, bytes before, bytes after)."""
    count = before = after = 0
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory, name)
                if name.endswith(SUFFIX) or not compressible(path):
                    continue
                size = path.stat().st_size
                if size < MIN_LENGTH:
                    continue
                copy = path.with_name(name + SUFFIX)
                if fresh_copy(str(path), str(copy)) is None:
                    # mtime=0: the same file gives the same copy, build after build.
                    copy.write_bytes(gzip.compress(path.read_bytes(), 9, mtime=0))
                count, before, after = count + 1, before + size, after + copy.stat().st_size
    return count, before, after


def fresh_copy(path, copy):
    """The copy's size if it exists and is not older than the file; else None."""
    try:
        copied = os.stat(copy)
        original = os.stat(path)
    except OSError:
        return None
    return copied.st_size if copied.st_mtime >= original.st_mtime else None


def handler_class(static_handler):
    """`static_handler` (a tornado StaticFileHandler subclass), sending the gzip copy of a file
    when there is a fresh one and the request would have been compressed whole."""

    class PrecompressedHandler(static_handler):
        _copy_size = None  # the copy's size when this answer sends it
        _has_copy = False

        def validate_absolute_path(self, root, absolute_path):
            absolute_path = super().validate_absolute_path(root, absolute_path)
            self._copy_size = None
            self._has_copy = False
            if absolute_path:
                copy_size = fresh_copy(absolute_path, absolute_path + SUFFIX)
                self._has_copy = copy_size is not None
                headers = self.request.headers
                # Tornado's own test for the client (GZipContentEncoding); a Range is of the file.
                if "gzip" in headers.get("Accept-Encoding", "") and "Range" not in headers:
                    self._copy_size = copy_size
            return absolute_path

        def set_headers(self):
            super().set_headers()
            if self._copy_size is not None:
                self.set_header("Content-Encoding", "gzip")
            # The answer depends on Accept-Encoding; Tornado's compression says so itself.
            if self._has_copy and not self.settings.get("compress_response"):
                self.add_header("Vary", "Accept-Encoding")

        def get_content_size(self):
            if self._copy_size is not None:
                return self._copy_size
            return super().get_content_size()

        async def get(self, *args, **kwargs):
            # Any signature: jupyter_server's kernelspec resources take (kernel_name, path).
            if kwargs.get("include_body", True):
                # get_content is a classmethod that the server also calls for the file itself
                # (its hash, for the ETag): only this answer's body comes from the copy.
                original = type(self).get_content

                def from_copy(absolute_path, start=None, end=None):
                    if self._copy_size is None:
                        return original(absolute_path, start, end)
                    return original(absolute_path + SUFFIX, start, end)

                self.get_content = from_copy
            await super().get(*args, **kwargs)

    PrecompressedHandler.__name__ = f"Precompressed{static_handler.__name__}"
    PrecompressedHandler.__qualname__ = PrecompressedHandler.__name__
    return PrecompressedHandler


def _sends_its_files_as_they_are(target, static_handler):
    """A StaticFileHandler whose answer is the file's bytes: not one that makes its own content
    (JupyterLab's ThemesHandler rewrites the URLs inside its CSS), which a copy would not match."""
    if not issubclass(target, static_handler):
        return False
    own_content = getattr(target.get_content, "__func__", None)
    return (
        own_content is static_handler.get_content.__func__
        and target.get_content_size is static_handler.get_content_size
    )


def install(web_app):
    """Swap every static handler of `web_app`'s routes that sends files as they are for its
    precompressed subclass; the number swapped."""
    from tornado.web import StaticFileHandler

    from .routes import swap_handlers

    return swap_handlers(
        web_app,
        lambda target: _sends_its_files_as_they_are(target, StaticFileHandler),
        handler_class,
    )


def main():
    roots = static_roots()
    count, before, after = write_copies(roots)
    print(
        f"precompressed {count} static files under {', '.join(map(str, roots))}: "
        f"{before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
