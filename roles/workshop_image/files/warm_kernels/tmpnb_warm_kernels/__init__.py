"""tmpnb-warm-kernels: a Jupyter Server extension doing before the visitor's click what a server
would otherwise do after it: a kernel started before the visitor asks for it, the export formats'
listing computed when the image is built (export_formats.py), the static files compressed then
(precompressed.py), the settings' listing computed once per change (settings_cache.py), and the
first page load's one-time costs paid by the server itself (first_page.py).

Enabled in the workshop image by `jupyter_server_config.d/tmpnb_warm_kernels.json`, which also sets
`ServerApp.kernel_manager_class` to `tmpnb_warm_kernels.manager.WarmKernelManager`. The extension
starts the pool once the server runs and serves its readiness at `<base_url>api/warm-kernels`.
Nothing here imports Jupyter at import time, so that `decisions` is unit-tested without it.
"""

import asyncio

__version__ = "1.0.0"

_background = set()  # the first page's task, referenced until done


def _jupyter_server_extension_points():
    return [{"module": "tmpnb_warm_kernels"}]


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.utils import url_path_join

    from . import export_formats, first_page
    from .handlers import WarmKernelsHandler

    # Not ready until the start hook below has warmed the first page (and so has started the
    # warm kernels too): said before the server answers any request.
    serverapp.web_app.settings[first_page.SETTINGS_KEY] = first_page.WARMING
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
    # Every extension has added its handlers by now, Notebook 7's and JupyterLab's static ones too.
    from . import first_page, precompressed, settings_cache

    # The handler swaps are speed-ups: one that fails leaves the server's own handlers, and must
    # not stop the warm-up below, without which the server is never called ready.
    swapped = _speed_up(serverapp, precompressed)
    serverapp.log.info(
        "tmpnb_warm_kernels: %d static handlers send the image's gzip copies", swapped
    )
    swapped = _speed_up(serverapp, settings_cache)
    serverapp.log.info("tmpnb_warm_kernels: %d settings handlers keep their listing", swapped)
    start = getattr(serverapp.kernel_manager, "start_warm_pool", None)
    if start is not None:
        start()
    task = asyncio.ensure_future(first_page.warm(serverapp))
    _background.add(task)
    task.add_done_callback(_background.discard)


def _speed_up(serverapp, module):
    """How many handlers `module.install` swapped in the web app; 0, logged, if it failed."""
    try:
        return module.install(serverapp.web_app)
    except Exception:
        serverapp.log.exception(
            "tmpnb_warm_kernels: %s failed; the server's own handlers stay", module.__name__
        )
        return 0
