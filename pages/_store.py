"""The dashboard's store of slow results where Streamlit's own caches cannot hold them: computing them draws a
progress bar, and a function under ``st.cache_data`` or ``st.cache_resource`` replays the elements it drew on every
later call. The pages make one :class:`Store` per server process (inside an ``st.cache_resource`` function), shared
by every session: ``pages._common`` for the opened caches, ``pages._models`` for predictions, embeddings and probes.

Plain Python, no Streamlit: the pages draw, the store only keeps.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable


class Store:
    """Values by key, thread-safe: at most ``keep`` of them (None: no limit), the oldest stored first out; with
    ``slot``, at most one value per ``slot(key)``, a newer one replacing the older (a folder's cache once the folder
    has changed). Keys are hashable; values are kept as they are, never copied.

    ``lock`` guards the values. It is re-entrant: a caller that holds it around :meth:`get` computes while holding
    it, so that no two sessions compute at once (preparing a cache writes files two at once would both write)."""

    def __init__(self, keep: int | None = None, slot: Callable[[Hashable], Hashable] | None = None):
        self.keep, self.slot = keep, slot
        self.lock = threading.RLock()
        self._values: dict = {}

    def __contains__(self, key: Hashable) -> bool:
        with self.lock:
            return key in self._values

    def __len__(self) -> int:
        with self.lock:
            return len(self._values)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value stored for ``key``, else ``compute()``, stored and returned. Computed outside the lock unless
        the caller holds it: another session's page need not wait for this one's prediction (two sessions asking at
        once may then both compute; the later value is kept). An error in ``compute`` stores nothing."""
        with self.lock:
            if key in self._values:
                return self._values[key]
        value = compute()
        with self.lock:
            if self.slot is not None:
                for old in [k for k in self._values if k != key and self.slot(k) == self.slot(key)]:
                    del self._values[old]
            self._values[key] = value  # a key computed twice keeps its place: the oldest still goes first
            while self.keep is not None and len(self._values) > self.keep:
                self._values.pop(next(iter(self._values)))
        return value
