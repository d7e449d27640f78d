"""A visitor's path: the landing page, the redirect, a kernel that computes, deep links, full."""

from urllib.parse import parse_qs, urlsplit

import requests
from conftest import pool_containers, visit
from nbtest import run_code, wait_for


def test_a_visitor_lands_in_a_notebook_and_a_kernel_computes(make_stack):
    stack = make_stack(pool_size=1)
    landing = requests.get(f"{stack.proxy.url}/", timeout=10)
    assert landing.status_code == 200
    assert "/spawn/tree" in landing.text
    assert stack.stats()["available"] == 1, "a plain GET / (a crawler) must not take a notebook"

    location = stack.spawn("tree")
    url = urlsplit(location)
    assert url.path.startswith("/user/") and url.path.endswith("/tree")
    token = parse_qs(url.query)["token"][0]
    assert len(token) >= 43  # 32 random bytes, URL-safe: 256 bits

    session = requests.Session()
    page = session.get(stack.proxy.url + location, timeout=30)
    assert page.status_code == 200
    assert "jupyter" in page.text.lower()

    base_url = stack.proxy.url + url.path.rsplit("/tree", 1)[0]
    assert run_code(base_url, token, "1+1") == "2"
    assert "event=handed-out" in stack.log_text()


def test_deep_links_keep_path_and_query(make_stack):
    stack = make_stack(pool_size=4)
    lab = urlsplit(stack.spawn("lab?reset"))
    assert lab.path.endswith("/lab")
    assert lab.query.startswith("reset&token=")  # the query as it was sent, then the token
    assert requests.get(stack.proxy.url + lab.path + "?" + lab.query, timeout=30).status_code == 200

    notebook = urlsplit(stack.spawn("notebooks/x.ipynb?kernel_name=python3"))
    assert notebook.path.endswith("/notebooks/x.ipynb")
    assert parse_qs(notebook.query)["kernel_name"] == ["python3"]

    pull = urlsplit(
        stack.spawn("git-pull?repo=https%3A%2F%2Fgithub.com%2Fa%2Fb&urlpath=lab%2Ftree%2Fb")
    )
    assert pull.path.endswith("/git-pull")
    query = parse_qs(pull.query)
    assert query["repo"] == ["https://github.com/a/b"] and query["urlpath"] == ["lab/tree/b"]
    assert pull.query.startswith("repo=https%3A%2F%2Fgithub.com%2Fa%2Fb&urlpath=lab%2Ftree%2Fb&")

    # A path with spaces and non-ASCII names, still percent-encoded; a query kept byte for byte,
    # repeated keys and all; a token the link carries is replaced by the notebook's own.
    odd = urlsplit(stack.spawn("lab/tree/Week%201/caf%C3%A9.ipynb?a=1&a=2&b=x%2By+z&token=guessed"))
    assert odd.path.endswith("/lab/tree/Week%201/caf%C3%A9.ipynb")
    assert odd.query.startswith("a=1&a=2&b=x%2By+z&token=")
    assert parse_qs(odd.query)["token"] != ["guessed"] and len(parse_qs(odd.query)["token"]) == 1


def test_a_full_pool_says_so_and_never_errors(make_stack, docker_client):
    stack = make_stack(pool_size=1)
    stack.spawn()
    full = requests.get(f"{stack.proxy.url}/spawn/tree", allow_redirects=False, timeout=10)
    assert full.status_code == 429
    assert int(full.headers["Retry-After"]) > 0
    assert "busy" in full.text and 'http-equiv="refresh"' in full.text

    api = f"http://127.0.0.1:{stack.port}/api/spawn/"
    assert requests.post(api, timeout=10).status_code == 401  # API_AUTH_TOKEN is set
    answer = requests.post(api, headers={"Authorization": f"token {stack.api_token}"}, timeout=10)
    assert answer.status_code == 429 and answer.json()["status"] == "full"
    assert answer.headers["Retry-After"]
    assert stack.stats() == {
        "available": 0,
        "capacity": 1,
        "version": stack.stats()["version"],
        "container_image": stack.options["image"],
    }
    assert len(pool_containers(docker_client, stack.pool_name)) == 1


def test_the_api_hands_out_a_url_and_token(make_stack):
    stack = make_stack(pool_size=1)
    answer = requests.post(
        f"{stack.proxy.url}/api/spawn/",
        headers={"Authorization": f"token {stack.api_token}"},
        timeout=10,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["url"].startswith("/user/")
    status = requests.get(
        f"{stack.proxy.url}{body['url']}api/status",
        headers={"Authorization": f"token {body['token']}"},
        timeout=10,
    )
    assert status.status_code == 200


def test_unknown_user_paths_and_nonsense_get_pages_not_errors(make_stack):
    stack = make_stack(pool_size=1)
    gone = requests.get(f"{stack.proxy.url}/user/doesnotexist/notebooks/a.ipynb?x=1", timeout=10)
    assert gone.status_code == 404
    assert "/spawn/notebooks/a.ipynb?x=1" in gone.text
    assert requests.get(f"{stack.proxy.url}/no/such/page", timeout=10).status_code == 404
    assert requests.delete(f"{stack.proxy.url}/api/stats", timeout=10).status_code == 405
    robots = requests.get(f"{stack.proxy.url}/robots.txt", timeout=10).text
    assert "Disallow: /spawn" in robots and "Disallow: /user" in robots
    for response in (gone,):
        assert "Traceback" not in response.text
    assert stack.stats()["available"] == 1


def test_static_files_are_extracted_from_the_image(make_stack, tmp_path):
    dump = tmp_path / "static"
    stack = make_stack(pool_size=1, static_files="/usr/local/bin", static_dump_path=str(dump))
    assert (dump / "bin" / "start-notebook").is_file()
    assert "event=static-files" in stack.log_text()


def test_a_visitor_s_notebook_weighs_more_on_the_cpu_than_the_pool_s(make_stack, docker_client):
    """Warm notebooks run at an eighth of Docker's CPU weight; the hand-out gives the visitor's its
    full weight, so a room arriving during a refill gets the CPU before the boots do."""
    stack = make_stack(pool_size=2)
    url, _ = visit(stack)
    path_id = urlsplit(url).path.split("/")[2]

    def shares() -> dict[str, int]:
        return {
            container.labels["tmpnb.path"]: container.attrs["HostConfig"]["CpuShares"]
            for container in pool_containers(docker_client, stack.pool_name)
        }

    wait_for(lambda: shares()[path_id] == 1024, 30, "the visitor's notebook to get its weight")
    stack.wait_available(1)
    assert [weight for path, weight in shares().items() if path != path_id] == [128]
