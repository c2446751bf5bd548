"""A third-party tus server for the tests: tuspyserver (PyPI) under uvicorn, on 127.0.0.1 only.

Run as ``python tests/tuspy_app.py PORT FILES_DIR LOG_FILE LIFETIME``.  The tus
endpoint answers only at ``/files/`` (with the trailing slash), as tuspyserver
does by default, and asks for no token.  Every request is logged to LOG_FILE as
one JSON line (method, path, whether an Authorization header came, body length),
so a test can check what the client sent without trusting the client; the
uploads themselves are files in FILES_DIR named by their upload ID.  The process ends itself after LIFETIME
seconds whatever happens to the test that started it.
"""
from __future__ import annotations

import json
import os
import sys
import threading


def main() -> None:
    port, files_dir, log_file, lifetime = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
    threading.Timer(lifetime, lambda: os._exit(3)).start()

    import uvicorn
    from fastapi import FastAPI, Request
    from tuspyserver import create_tus_router

    lock = threading.Lock()

    def log(event: dict) -> None:
        with lock, open(log_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")

    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next):
        log({"event": "request", "method": request.method, "path": request.url.path,
             "authorization": "authorization" in request.headers,
             "length": int(request.headers.get("content-length") or 0)})
        return await call_next(request)

    app.include_router(create_tus_router(prefix="files", files_dir=files_dir))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
