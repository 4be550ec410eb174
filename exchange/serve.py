"""One web server process: uvicorn on a socket shared with its siblings via SO_REUSEPORT.

``uvicorn --workers N`` hands most connections to one worker; N processes that each
bind the port with SO_REUSEPORT let the kernel spread connections over them.

    python -m exchange.serve --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import os
import socket
import threading

DB_POOL_MAX_SIZE = 10
WARM_SECONDS = 60


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
    # A web process takes its database connections from a pool (exchange/settings.py says why).
    os.environ.setdefault("DB_POOL_MAX_SIZE", str(DB_POOL_MAX_SIZE))

    import gc

    import uvicorn

    # The application and everything it imports, loaded before serving and then left out of
    # the cyclic garbage collector's passes (gc.freeze): a full pass over them stopped the
    # process — pages, order entry and its sockets alike — for 200 ms and more under load.
    # What the first requests build and keep (URL resolvers, templates, translations) is
    # frozen too, once the process has served for WARM_SECONDS.
    from exchange.asgi import application

    gc.collect()
    gc.freeze()
    warm = threading.Timer(WARM_SECONDS, gc.freeze)
    warm.daemon = True  # not kept waiting for by a process that stops sooner
    warm.start()

    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    config = uvicorn.Config(
        application, loop="uvloop", http="httptools", ws="websockets-sansio", lifespan="off",
        access_log=args.access_log, log_level="warning", backlog=2048, server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
