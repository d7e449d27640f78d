"""What one notebook server of the workshop image costs to boot, and how soon its first cell runs.

    python bench/notebook_boot.py [--image workshop-notebook:slim] [--boots 5] [--modes cold,warm]
                                  [--option=--Class.trait=value ...] [--json-out results.json]

In one throwaway container of the image (no network), `--boots` times after one unmeasured boot:
start the server as the orchestrator does (the command start-notebook execs: base path
/user/bench/, no token, plus each `--option`) and measure, from /proc, the CPU seconds (user +
system) and the RSS of the server until `/user/bench/api/status` answers; in `warm` mode also of
the server and its warm kernel until `api/warm-kernels` says ready. Then the browser's first cell,
over the REST and websocket API as Notebook 7 sends it (GET tree for the _xsrf cookie; POST
api/sessions on a random path in the notebook's folder; PATCH its path, then its name; the
kernel's websocket: kernel_info, then execute `5*4`): the seconds from the POST to the `20`.
`cold` mode runs the server with jupyter_server's own kernel manager (a kernel starts when asked),
`warm` with the image's (tmpnb_warm_kernels); an image without the extension has only `cold`.
Besides, `python -X importtime` of jupyter_server.serverapp. Prints a table; nothing is left
behind (the container is --rm and labelled tmpnb.bench=boot).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = r'''
import asyncio, json, os, subprocess, sys, time, urllib.request, uuid, http.cookiejar
from tornado import ioloop, websocket, httpclient

MODE, BOOTS, OPTIONS = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
PORT = 8888
BASE = f"http://127.0.0.1:{PORT}/user/bench/"
TICK = os.sysconf("SC_CLK_TCK")
ORDINARY = "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager"


def tree(pid):
    """The pid and its descendants (the kernels)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cost(pids):
    cpu = rss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICK
            with open(f"/proc/{p}/status") as f:
                rss += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) * 1024
        except (OSError, StopIteration):
            pass
    return cpu, rss


def wait(url, ready, server):
    while True:
        if server.poll() is not None:
            with open("/tmp/server.log") as log:
                raise SystemExit(f"the server exited ({server.returncode}): {log.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if ready(json.load(answer)):
                    return
        except OSError:
            pass
        time.sleep(0.02)


def first_cell():
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(BASE + "tree").read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)

    def call(method, path, body):
        request = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), method=method,
            headers={"Content-Type": "application/json", "X-XSRFToken": xsrf})
        with opener.open(request) as answer:
            return json.load(answer)

    began = time.monotonic()
    session = call("POST", "api/sessions", {"path": f"workshop/{uuid.uuid4()}", "type": "notebook",
                                            "name": "python.ipynb", "kernel": {"name": "python3"}})
    call("PATCH", f"api/sessions/{session['id']}", {"path": "workshop/python.ipynb"})
    call("PATCH", f"api/sessions/{session['id']}", {"name": "python.ipynb"})
    kernel = session["kernel"]["id"]

    async def run():
        url = BASE.replace("http", "ws") + f"api/kernels/{kernel}/channels"
        request = httpclient.HTTPRequest(f"{url}?session_id={uuid.uuid4()}",
                                         headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{PORT}"})
        ws = await websocket.websocket_connect(request)
        client_session = uuid.uuid4().hex

        async def ask(msg_type, content, wanted):
            msg_id = uuid.uuid4().hex
            ws.write_message(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": msg_type, "username": "",
                           "session": client_session, "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell", "content": content}))
            while True:
                message = json.loads(await asyncio.wait_for(ws.read_message(), 120))
                if (message["msg_type"] == wanted
                        and message["parent_header"].get("msg_id") == msg_id):
                    return message["content"]

        # As Notebook 7's kernel connection: kernel_info first, the cell once it is answered.
        await ask("kernel_info_request", {}, "kernel_info_reply")
        result = await ask("execute_request",
                           {"code": "5*4", "silent": False, "store_history": True,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
                           "execute_result")
        ws.close()
        return result["data"]["text/plain"], result["execution_count"]

    result, count = ioloop.IOLoop.current().run_sync(run)
    assert result == "20" and count == 1, (result, count)
    return time.monotonic() - began


def boot():
    # What start-notebook execs, plus the options of the run (start-notebook takes none).
    command = ["jupyter", "server", "--ServerApp.base_url=/user/bench/", f"--ServerApp.port={PORT}",
               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
               "--ServerApp.open_browser=False", "--ServerApp.root_dir=" + os.environ["HOME"],
               "--IdentityProvider.token=", *OPTIONS]
    if MODE == "cold":
        command.append(f"--ServerApp.kernel_manager_class={ORDINARY}")
    began = time.monotonic()
    with open("/tmp/server.log", "w") as log:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    wait(BASE + "api/status", lambda model: True, server)
    figures = {"status_seconds": time.monotonic() - began}
    figures["status_cpu"], figures["status_rss"] = cost([server.pid])
    if MODE == "warm":
        wait(BASE + "api/warm-kernels", lambda model: model["ready"], server)
        figures["warm_seconds"] = time.monotonic() - began
        figures["warm_cpu"], figures["warm_rss"] = cost(tree(server.pid))
    figures["first_cell_seconds"] = first_cell()
    pids = tree(server.pid)
    server.terminate()
    server.wait()
    for pid in pids[1:]:  # kernels the server left (they would follow their parent within seconds)
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    time.sleep(0.5)
    return figures


boot()  # unmeasured: page cache, byte code
print(json.dumps([boot() for _ in range(BOOTS)]))
'''

IMPORT_PROBE = r"""
import subprocess, sys
def cumulative(module):
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True).stderr
    times = {line.split("|")[2].strip(): int(line.split("|")[1]) for line in out.splitlines()
             if line.startswith("import time:") and line.split("|")[1].strip().isdigit()}
    return times
subprocess.run([sys.executable, "-c", "import jupyter_server.serverapp"])  # byte code, page cache
runs = [cumulative("jupyter_server.serverapp") for _ in range(3)]
print(min(r["jupyter_server.serverapp"] for r in runs) / 1e6,
      min(r.get("rfc3987_syntax", 0) for r in runs) / 1e6)
"""


def in_container(image: str, script: str, *args: str) -> str:
    """Run `script` with the image's Python in a throwaway container; its standard output."""
    command = ["docker", "run", "--rm", "-i", "--network", "none", "--label", "tmpnb.bench=boot"]
    command += [image, "python3", "-", *args]
    done = subprocess.run(command, input=script, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:10])}... failed:\n{done.stderr[-3000:]}")
    return done.stdout


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f} to {max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="workshop-notebook:slim")
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--modes", default="cold,warm", help="cold, warm or both (cold,warm)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        help="a server option for every boot, e.g. --option=--WarmKernelManager.warm_imports=numpy",
    )
    parser.add_argument("--json-out")
    options = parser.parse_args()

    results: dict[str, object] = {"image": options.image, "options": options.option}
    imports, rfc3987 = in_container(options.image, IMPORT_PROBE).split()
    results["import_seconds"] = {
        "jupyter_server.serverapp": float(imports),
        "rfc3987_syntax": float(rfc3987),
    }
    print(
        f"{options.image}: import jupyter_server.serverapp {float(imports):.2f} s "
        f"(of which rfc3987_syntax {float(rfc3987):.2f} s), python -X importtime, best of 3"
    )
    print(f"median (min to max) of {options.boots} boots, each after one unmeasured boot")
    print(
        "| mode | api/status: s / CPU s / RSS MiB | warm kernel ready: s / CPU s / RSS MiB "
        "| session → `5*4` = 20: s |"
    )
    print("| --- | --- | --- | --- |")
    for mode in options.modes.split(","):
        probe_args = (mode, str(options.boots), *options.option)
        boots = json.loads(in_container(options.image, PROBE, *probe_args))
        results[mode] = boots

        def column(key, boots=boots):
            return [boot[key] for boot in boots if key in boot]

        status = (
            f"{summary(column('status_seconds'))} / {summary(column('status_cpu'))} / "
            f"{summary([v / 2**20 for v in column('status_rss')])}"
        )
        warm = "—"
        if column("warm_seconds"):
            warm = (
                f"{summary(column('warm_seconds'))} / {summary(column('warm_cpu'))} / "
                f"{summary([v / 2**20 for v in column('warm_rss')])}"
            )
        print(f"| {mode} | {status} | {warm} | {summary(column('first_cell_seconds'))} |")
    if options.json_out:
        with open(options.json_out, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
