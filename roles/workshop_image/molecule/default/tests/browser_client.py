"""A browser's requests, run in a notebook container by the image's own Python, against its server.

test_workshop_image.py runs it with `docker exec`, nbtest.py (tests/support) going along as a
module made from its text, since the container holds no copy of the tests:

    BASE_URL get PATH            -> the JSON body
    BASE_URL open NOTEBOOK CODE  -> {"outputs", "execution_count", ...}
    BASE_URL kernel-pids         -> [pid of each ipykernel]
    BASE_URL put PATH JSON       -> the status of PUT PATH with the JSON body, as the page sends it

`open` does what Notebook 7 and JupyterLab do for a notebook (nbtest.NotebookServer.open_notebook:
the _xsrf cookie, a session on a random path, then renamed), opens the kernel's websocket, sends
kernel_info and, once answered, executes CODE; it prints the cell's outputs and execution count.
"""

import json
import os
import sys
import time

from nbtest import NotebookServer


def main(base, command, *args):
    server = NotebookServer(base)
    if command == "get":
        response = server.http.get(base + args[0], timeout=60)
        response.raise_for_status()
        return response.json()
    if command == "put":
        # The page's way: the _xsrf cookie from a page load, sent back as X-XSRFToken.
        server.http.get(base + "tree", timeout=60).raise_for_status()
        headers = {"X-XSRFToken": server.http.cookies.get("_xsrf", "")}
        response = server.http.put(base + args[0], data=args[1], headers=headers, timeout=60)
        return response.status_code
    if command == "kernel-pids":
        pids = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    argv = file.read().split(b"\0")
            except OSError:
                continue
            if argv[1:3] == [b"-m", b"ipykernel_launcher"]:
                pids.append(int(entry))
        return sorted(pids)

    notebook, code = args
    began = time.monotonic()
    kernel_id = server.open_notebook(notebook)
    with server.channels(kernel_id, timeout=120) as kernel:
        execution = kernel.execute(code, timeout=120, raise_error=False)
    return {
        "kernel_id": kernel_id,
        "seconds": time.monotonic() - began,
        "outputs": "".join(execution.outputs),
        "execution_count": execution.execution_count,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
