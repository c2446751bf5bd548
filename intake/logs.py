"""The intake's log: one JSON object per line, for requests and for everything else.

Request lines carry method, path, status, bytes in and out, case, bundle ID,
upload ID and duration.  Everything a client controls (the path, a case ID) is
text inside a JSON string, and :func:`line` escapes every control character
(C0, DEL, C1, and the Unicode line separators) so no request can forge a log
line or drive a terminal that tails the log.  Headers are never logged, so a
token never is.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

ACCESS = logging.getLogger("jcdiag.intake.access")
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")      # json.dumps already escapes C0 and non-ASCII


def line(fields: dict[str, Any]) -> str:
    """``fields`` as one JSON line with every control character escaped."""
    text = json.dumps(fields, ensure_ascii=True, default=str, separators=(",", ":"))
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class JsonFormatter(logging.Formatter):
    """Every log record (ours, uvicorn's, boto's) as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
               + f".{int(record.msecs):03d}Z", "level": record.levelname.lower(), "logger": record.name}
        if fields is not None:
            out.update(fields)
        else:
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return line(out)


def setup(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the whole process; chatty libraries at warnings only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for chatty in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def access(fields: dict[str, Any]) -> None:
    """One request's line (``fields`` from the app's access middleware)."""
    status = fields.get("status", 0)
    level = logging.ERROR if status >= 500 else logging.INFO
    ACCESS.log(level, "request", extra={"fields": {"msg": "request", **fields}})
