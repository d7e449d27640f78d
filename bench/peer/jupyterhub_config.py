"""JupyterHub as an operator would set it up for a no-login workshop; bench/peer/run.py starts it.

Everything that differs between runs (ports, network, image, labels, the state directory) comes
from PEER_* variables that run.py sets; the choices themselves are here, each with its reason.
"""

import os

c = get_config()  # noqa: F821 (JupyterHub defines it while it reads this file)
env = os.environ

# Public side: configurable-http-proxy (Debian's, found on PATH), started and fed by the hub.
c.JupyterHub.bind_url = f"http://127.0.0.1:{env['PEER_PORT']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env['PEER_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.pid_file = f"{env['PEER_STATE_DIR']}/proxy.pid"
# The hub's own API listens on the notebooks' bridge, where the single-user servers reach it.
c.JupyterHub.hub_ip = env["PEER_HUB_IP"]
c.JupyterHub.hub_port = int(env["PEER_HUB_PORT"])
c.JupyterHub.db_url = f"sqlite:///{env['PEER_STATE_DIR']}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{env['PEER_STATE_DIR']}/jupyterhub_cookie_secret"

# No login: every visitor of the public link is a new temporary user (tmpauthenticator's purpose).
# Since JupyterHub 5 an authenticator admits nobody unless told whom: here, everybody.
c.JupyterHub.authenticator_class = "tmpauthenticator.TmpAuthenticator"
c.Authenticator.allow_all = True

# Each visitor's server is a container of the same notebook image (plus jupyterhub-singleuser),
# on the same kind of network, with the same memory cap as the orchestrator's default (512m).
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = env["PEER_IMAGE"]
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.pull_policy = "never"  # no registry here; the image is built locally
c.DockerSpawner.network_name = env["PEER_NETWORK"]
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True  # a stopped server's container goes away, as tmpnb's do
c.DockerSpawner.mem_limit = "512M"
c.DockerSpawner.prefix = env["PEER_PREFIX"]
c.DockerSpawner.extra_create_kwargs = {"labels": {"tmpnb.peer.run": env["PEER_RUN"]}}
# The same landing page as the workshop link /spawn/tree: Notebook 7's file browser.
c.Spawner.default_url = "/tree"

# The hub's defaults (start_timeout 60 s, http_timeout 30 s) fail most servers when a whole room
# clicks at once on a small machine: 50 servers booting on 2 cores take minutes. An operator who
# expects a room raises both; 600 s keeps every spawn in the figures instead of timing it out.
c.Spawner.start_timeout = 600
c.Spawner.http_timeout = 600
# The hub's default too, said out loud: stopping the hub stops (and so removes) every server.
c.JupyterHub.cleanup_servers = True
