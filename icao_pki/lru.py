"""A bounded, thread-safe set that forgets its least recently used members.

Why: two caches remember what a costly check accepted — CV signatures verified (`cvc.certificate`)
and operator secrets scrypt accepted (`lifecycle_api.credentials`) — and both must stay bounded
and safe under the API's threads.  `functools.lru_cache` memoises a function, not membership.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class BoundedSet:
    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("size must be positive")
        self.size = size
        self._members: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, item: Hashable) -> bool:
        """Membership; a member found becomes the most recently used."""
        with self._lock:
            if item in self._members:
                self._members.move_to_end(item)
                return True
            return False

    def add(self, item: Hashable) -> None:
        with self._lock:
            self._members[item] = None
            self._members.move_to_end(item)
            while len(self._members) > self.size:
                self._members.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._members.clear()

    def __len__(self) -> int:
        return len(self._members)
