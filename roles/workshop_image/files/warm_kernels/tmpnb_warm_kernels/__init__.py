"""tmpnb-warm-kernels: a Jupyter Server extension doing before the visitor's click what a server
would otherwise do after it: a kernel started before the visitor asks for it, and the export
formats' listing computed when the image is built (export_formats.py).

Enabled in the workshop image by `jupyter_server_config.d/tmpnb_warm_kernels.json`, which also sets
`ServerApp.kernel_manager_class` to `tmpnb_warm_kernels.manager.WarmKernelManager`. The extension
starts the pool once the server runs and serves its readiness at `<base_url>api/warm-kernels`.
Nothing here imports Jupyter at import time, so that `decisions` is unit-tested without it.
"""

__version__ = "1.0.0"


def _jupyter_server_extension_points():
    return [{"module": "tmpnb_warm_kernels"}]


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.utils import url_path_join

    from . import export_formats
    from .handlers import WarmKernelsHandler

    base_url = serverapp.web_app.settings["base_url"]
    handlers = [(url_path_join(base_url, "api/warm-kernels"), WarmKernelsHandler)]
    # Handlers added here come before the server's own (Tornado inserts them ahead), so this
    # one answers api/nbconvert when the image holds the answer.
    answer = export_formats.load()
    if answer is not None:
        handlers.append(
            (url_path_join(base_url, "api/nbconvert"), export_formats.handler_class(answer))
        )
    else:
        serverapp.log.warning(
            "tmpnb_warm_kernels: no %s: the export formats are computed per request",
            export_formats.ANSWER_FILE,
        )
    serverapp.web_app.add_handlers(".*$", handlers)
    if not hasattr(serverapp.kernel_manager, "start_warm_pool"):
        serverapp.log.error(
            "tmpnb_warm_kernels: ServerApp.kernel_manager_class is %s, not "
            "tmpnb_warm_kernels.manager.WarmKernelManager: no kernel is kept warm",
            type(serverapp.kernel_manager).__name__,
        )


async def _start_jupyter_server_extension(serverapp):
    # Runs once the event loop does (ExtensionManager.start_all_extensions): the pool's tasks
    # need it. The server already answers /api/status; the pool starts in the background.
    start = getattr(serverapp.kernel_manager, "start_warm_pool", None)
    if start is not None:
        start()
