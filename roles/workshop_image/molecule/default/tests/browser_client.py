"""A browser's requests, run in a notebook container by the image's own Python (tornado, stdlib).

    python3 -c "$(cat browser_client.py)" BASE_URL get PATH            -> the JSON body
    python3 -c "$(cat browser_client.py)" BASE_URL open NOTEBOOK CODE  -> {"outputs", ...}
    python3 -c "$(cat browser_client.py)" BASE_URL kernel-pids         -> [pid of each ipykernel]

`open` does what Notebook 7 and JupyterLab do for a notebook (their SessionContext): GET tree for
the _xsrf cookie; POST api/sessions on a random path in the notebook's folder with its name and
kernel; PATCH the session's path, then its name; open the kernel's websocket, send kernel_info and,
once answered, execute CODE; it prints the cell's outputs and execution count.
"""

import asyncio
import http.cookiejar
import json
import os
import sys
import time
import urllib.request
import uuid

from tornado import httpclient, websocket


def main(base, command, *args):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def call(method, path, body=None, xsrf=""):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-XSRFToken": xsrf}
        request = urllib.request.Request(base + path, data, headers, method=method)  # noqa: S310
        with opener.open(request) as r:
            return json.load(r)

    if command == "get":
        return call("GET", args[0])
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
    opener.open(base + "tree").read()
    xsrf = next(cookie.value for cookie in jar if cookie.name == "_xsrf")
    folder, _, name = notebook.rpartition("/")
    began = time.monotonic()
    session = call(
        "POST",
        "api/sessions",
        {
            "path": f"{folder}/{uuid.uuid4()}" if folder else str(uuid.uuid4()),
            "type": "notebook",
            "name": name,
            "kernel": {"name": "python3"},
        },
        xsrf,
    )
    call("PATCH", f"api/sessions/{session['id']}", {"path": notebook}, xsrf)
    call("PATCH", f"api/sessions/{session['id']}", {"name": name}, xsrf)
    kernel_id = session["kernel"]["id"]

    async def run():
        origin = "/".join(base.split("/")[:3])
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)
        url = base.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
        request = httpclient.HTTPRequest(
            f"{url}?session_id={uuid.uuid4()}", headers={"Cookie": cookies, "Origin": origin}
        )
        connection = await websocket.websocket_connect(request)
        client_session = uuid.uuid4().hex

        async def ask(msg_type, content):
            msg_id = uuid.uuid4().hex
            header = {"msg_id": msg_id, "msg_type": msg_type, "username": "", "date": ""}
            header.update(session=client_session, version="5.3")
            message = {"header": header, "parent_header": {}, "metadata": {}}
            message.update(channel="shell", content=content)
            connection.write_message(json.dumps(message))
            outputs, reply = [], None
            while True:
                message = json.loads(await asyncio.wait_for(connection.read_message(), 120))
                if message["parent_header"].get("msg_id") != msg_id:
                    continue
                kind = message["msg_type"]
                if kind == "stream":
                    outputs.append(message["content"]["text"])
                elif kind in ("execute_result", "display_data"):
                    outputs.append(message["content"]["data"]["text/plain"])
                elif kind == "error":
                    outputs.append(f"{message['content']['ename']}: {message['content']['evalue']}")
                elif kind.endswith("_reply"):
                    reply = message["content"]
                elif kind == "status" and message["content"]["execution_state"] == "idle":
                    return "".join(outputs), reply

        await ask("kernel_info_request", {})
        outputs, reply = await ask(
            "execute_request",
            {"code": code, "silent": False, "store_history": True, "user_expressions": {}},
        )
        connection.close()
        return outputs, reply

    outputs, reply = asyncio.run(run())
    return {
        "kernel_id": kernel_id,
        "session_id": session["id"],
        "seconds": time.monotonic() - began,
        "outputs": outputs,
        "execution_count": reply["execution_count"],
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
