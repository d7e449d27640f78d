"""GET <base_url>api/warm-kernels: is every configured warm kernel ready? (the orchestrator's probe)

The contract is in the package's README.
"""

import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from . import first_page


class WarmKernelsHandler(APIHandler):
    """{"ready": bool, "kernels": {name: {"state": ..., ...}}}; see the package's README."""

    auth_resource = "kernels"
    # The orchestrator polls this: like /api/status, it is no activity of the visitor's.
    _track_activity = False

    @web.authenticated
    @authorized
    async def get(self):
        manager = self.kernel_manager
        page = self.settings.get(first_page.SETTINGS_KEY, first_page.WARM)
        if hasattr(manager, "warm_readiness"):
            model = manager.warm_readiness(page)
        else:
            model = {"ready": False, "kernels": {}, "error": "WarmKernelManager is not in use"}
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(model, sort_keys=True))
