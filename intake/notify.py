"""``--notify-url``: a JSON event per verified bundle, POSTed with bounded retries.

A ticketing system (or a small bridge) receives ``{"event": "bundle.verified",
"bundle_id", "case_id", "sha256", "size", "uploaded_at", "content_path"}`` (and
``content_url`` when ``--public-url`` names the intake; never built from a request's
``Host``, which the uploader chooses) and can
attach the bundle to the case.  Delivery runs on one background thread with a
bounded queue, so a slow or dead receiver never holds an upload's response: a
failure is retried ``attempts`` times with doubling delays, then logged and
counted (``notifications_failed``); the bundle itself is safe in storage either way.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Optional

log = logging.getLogger("jcdiag.intake.notify")
QUEUE_LIMIT = 1000


class Notifier:
    def __init__(self, url: str, count: Callable[[str], None], attempts: int = 5,
                 first_delay: float = 1.0, timeout: float = 10.0):
        self.url, self.count = url, count
        self.attempts, self.first_delay, self.timeout = attempts, first_delay, timeout
        self._queue: "queue.Queue[Optional[dict]]" = queue.Queue(QUEUE_LIMIT)
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def send(self, event: dict) -> None:
        """Queue ``event``; never blocks (a full queue drops it, logged)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.count("notifications_failed")
            log.error("notify queue full: event for bundle %s dropped", event.get("bundle_id"))

    def close(self, wait: float = 5.0) -> None:
        if self._thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join(wait)

    def _run(self) -> None:
        import requests
        session = requests.Session()
        session.trust_env = False           # the receiver is named explicitly; no proxy surprises
        while (event := self._queue.get()) is not None:
            delay = self.first_delay
            for attempt in range(1, self.attempts + 1):
                try:
                    reply = session.post(self.url, json=event, timeout=self.timeout, allow_redirects=False)
                    if 200 <= reply.status_code < 300:
                        self.count("notifications_sent")
                        break
                    why = f"HTTP {reply.status_code}"
                except requests.RequestException as exc:
                    why = type(exc).__name__
                if attempt == self.attempts:
                    self.count("notifications_failed")
                    log.error("notify %s failed for bundle %s after %d attempts (%s)", self.url,
                              event.get("bundle_id"), attempt, why)
                    break
                log.warning("notify attempt %d for bundle %s failed (%s); retrying in %.1fs", attempt,
                            event.get("bundle_id"), why, delay)
                time.sleep(delay)
                delay = min(delay * 2, 60.0)
