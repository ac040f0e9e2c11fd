"""``python -m bench.moto_server``: moto's S3-protocol server on 127.0.0.1, on a free port.

The shards scenario runs it as a process of its own (so its CPU is neither the bench's
nor the client's, and its GIL is not the sandbox's): the port is the first line on
stdout; SIGTERM stops it. Requests are not logged. (tests/s3server.py runs the same
server in a thread of the test process, to count its requests.)
"""

from __future__ import annotations

import signal
import sys
from typing import Any


def main() -> int:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log(self, *args: Any) -> None:
            pass

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.server_port, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
