"""Swapping a handler class of a running Tornado application for a subclass, in place.

The server's routes are set by jupyter_server and its extensions before ours starts; a handler
added in front of theirs would have to repeat each route's pattern and arguments. Swapping the
class in each route keeps both, and changes only what the subclass changes.
"""


def swap_handlers(web_app, wanted, subclass_of):
    """Every route of `web_app` (in every router) whose handler class is `wanted(cls)` gets
    `subclass_of(cls)` instead, made once per class; the number of routes changed."""
    subclasses = {}
    swapped = 0
    routers = [web_app.default_router, web_app.wildcard_router]
    seen = set()
    while routers:
        router = routers.pop()
        if id(router) in seen:
            continue
        seen.add(id(router))
        for rule in getattr(router, "rules", ()):
            target = rule.target
            if isinstance(target, type) and wanted(target):
                if target not in subclasses:
                    subclasses[target] = subclass_of(target)
                rule.target = subclasses[target]
                swapped += 1
            elif hasattr(target, "rules"):
                routers.append(target)
    return swapped
