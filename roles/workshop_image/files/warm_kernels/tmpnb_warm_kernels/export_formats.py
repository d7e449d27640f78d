"""GET <base_url>api/nbconvert answered from a file written when the image was built.

Notebook 7 and JupyterLab ask for the export formats (the "Download as" menu) on every page load.
jupyter_server computes the answer each time: it imports nbconvert and builds every exporter,
about 0.4 CPU-second on the first call and 0.2 on each next one, on the 2-core build machine. A
pooled server has one visitor, so every visitor paid it after the click: 0.39 of the 0.65
CPU-second a first page load cost the server. The answer depends only on the packages
installed, which are fixed in the image: it is computed once at build time (`python -m
tmpnb_warm_kernels.export_formats`, in the Dockerfile after the last pip step) and served from
memory, the same JSON.

Without the file (an image built before it, or removed), the handler is not registered and
jupyter_server answers as it always did. Only the listing is served this way: the exports
themselves (`nbconvert/<format>/<path>`) are jupyter_server's own.
"""

import json
import sys
from pathlib import Path

# Where the image keeps the answer: the environment's share/jupyter, beside the kernelspecs.
ANSWER_FILE = Path(sys.prefix) / "share" / "jupyter" / "tmpnb" / "export_formats.json"


def compute():
    """What jupyter_server's NbconvertRootHandler answers: {exporter: {"output_mimetype": ...}}."""
    from nbconvert.exporters import base

    answer = {}
    for name in base.get_export_names():
        try:
            exporter = base.get_exporter(name)
        except ValueError:  # uninstalled between the two calls, as jupyter_server allows
            continue
        answer[name] = {"output_mimetype": exporter.output_mimetype}
    return answer


def load(path=ANSWER_FILE):
    """The answer written at build time, as the text to send; None if there is none to trust."""
    try:
        text = path.read_text(encoding="utf-8")
        if isinstance(json.loads(text), dict):
            return text
    except (OSError, ValueError):
        pass
    return None


def handler_class(answer):
    """A handler that sends `answer`, with jupyter_server's own authentication and permission."""
    from jupyter_server.auth.decorator import authorized
    from jupyter_server.services.nbconvert.handlers import NbconvertRootHandler
    from tornado import web

    class ExportFormatsHandler(NbconvertRootHandler):
        @web.authenticated
        @authorized
        async def get(self):
            self.set_header("Content-Type", "application/json")
            self.finish(answer)

    return ExportFormatsHandler


def main():
    ANSWER_FILE.parent.mkdir(parents=True, exist_ok=True)
    ANSWER_FILE.write_text(json.dumps(compute(), sort_keys=True), encoding="utf-8")
    print(f"wrote {ANSWER_FILE}")


if __name__ == "__main__":
    main()
