"""GET <base_url>lab/api/settings, the listing of every plugin's settings, computed once per change.

Notebook 7 and JupyterLab ask for the whole listing on every page load, and jupyterlab_server
builds it each time from scratch: it reads about 100 schemas, checks each against the JSON Schema
meta-schema, and validates the user's settings against each. That cost 89-129 ms of CPU per call
on the build machine (bench/page_load.py), the largest single request of a page load. Its inputs
are few and rarely change: the schema folders (the image's, and any the visitor installs), the
user's settings folder, the locale, and the overrides the handler was given at start. So the
handler is swapped (`install`) for a subclass that keeps the last answer of each kind (all, or
`ids_only`) with a fingerprint of those inputs, and sends it again while the fingerprint is the
same. The fingerprint is the size and modification time of every file in the user's settings
folder and of every folder under the schema folders, so a setting saved (PUT), a language chosen,
or an extension added or removed, computes the listing anew. The first page's warm-up
(first_page.py) asks for the listing once, so the visitor's page load finds it ready.
A single plugin's settings (`lab/api/settings/<id>`) are jupyterlab_server's own, as before.
"""

import os


def fingerprint(settings_dir, schema_dirs):
    """What the listing is computed from, as it is on disk now (a tuple to compare)."""
    seen = []
    for directory, _, names in os.walk(settings_dir):
        for name in names:
            path = os.path.join(directory, name)
            try:
                status = os.stat(path)
            except OSError:
                continue
            seen.append((path, status.st_size, status.st_mtime_ns))
    for root in schema_dirs:
        for directory, _, _ in os.walk(root):
            try:
                seen.append((directory, os.stat(directory).st_mtime_ns))
            except OSError:
                continue
    return tuple(sorted(seen, key=str))


def handler_class(settings_handler):
    """`settings_handler` (jupyterlab_server's SettingsHandler), answering the whole listing from
    the last one computed while its inputs are unchanged. Warnings about the user's settings are
    logged when the listing is computed, not again for each answer from it."""
    from tornado import web

    kept = {}  # ids_only -> (inputs, the answer's text)

    class CachedSettingsHandler(settings_handler):
        _sent = None  # what finish() sent, while an answer is being computed to be kept

        @web.authenticated
        def get(self, schema_name=""):
            if schema_name:
                return super().get(schema_name)
            ids_only = self.get_argument("ids_only", "") == "true"
            inputs = (
                self.get_current_locale(),
                repr(self.overrides),
                fingerprint(
                    self.settings_dir, [self.schemas_dir, *(self.labextensions_path or [])]
                ),
            )
            if ids_only in kept and kept[ids_only][0] == inputs:
                self.set_header("Content-Type", "application/json")
                return self.finish(kept[ids_only][1])
            self._sent = []
            result = super().get(schema_name)
            if len(self._sent) == 1 and isinstance(self._sent[0], str) and self.get_status() == 200:
                kept[ids_only] = (inputs, self._sent[0])
            return result

        def finish(self, chunk=None):
            if self._sent is not None:
                self._sent.append(chunk)
            return super().finish(chunk)

    CachedSettingsHandler.__name__ = CachedSettingsHandler.__qualname__ = (
        f"Cached{settings_handler.__name__}"
    )
    return CachedSettingsHandler


def install(web_app):
    """Swap jupyterlab_server's settings handler in `web_app`'s routes; the number swapped (0
    without JupyterLab's server)."""
    try:
        from jupyterlab_server.settings_handler import SettingsHandler
    except ImportError:
        return 0
    from .routes import swap_handlers

    return swap_handlers(web_app, lambda target: issubclass(target, SettingsHandler), handler_class)
