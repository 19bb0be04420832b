"""The model cache the app owns: models loaded on first use and kept, each loaded once however many users ask.

The synthesiser keeps every model (GPT, SoVITS, HuBERT, BERT, the SV model of v2Pro/v2ProPlus, G2PW, Whisper,
the reranker) and every prepared reference (with its SV embeddings) here, keyed by what was loaded, so switching
GPT weights loads only the new GPT.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class ModelCache:
    """Models loaded on first use and kept, one lock per key so concurrent users never load one twice.

    Keys are tuples starting with the kind ("gpt", "sovits", "hubert", "bert", "sv", "clvp", "ref" for prepared
    references, "prompt" for a reference text's phones and BERT features) and naming what was loaded
    (resolved path, file mtime, device), so switching GPT weights loads only the new GPT: SoVITS, HuBERT and
    BERT stay. At most ``max_per_kind`` entries of one kind
    are kept (``limits`` per kind; least recently used leaves first). Owned by the app (one per process),
    never a module global.
    """

    def __init__(self, max_per_kind: int = 2, limits: Mapping[str, int] | None = None) -> None:
        self.max_per_kind = max(1, max_per_kind)
        # Prepared references (tokens and spectrograms) and prompts (phones and BERT features) are small:
        # keep more of them.
        self.limits = {"ref": 16, "prompt": 16, **(limits or {})}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self.loads: dict[tuple, int] = {}  # how often each key was loaded (tests, diagnostics)

    def get(self, key: tuple, loader: Callable[[], Any]) -> Any:
        """The value cached under ``key``, loaded by ``loader()`` on first use."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # a second caller for the same key waits here and then finds it loaded
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                value = loader()
            finally:
                with self._lock:  # waiters already hold this lock object; new callers find the value
                    self._key_locks.pop(key, None)
            self._store(key, value)
            return value

    def _store(self, key: tuple, value: Any) -> None:
        with self._lock:
            same_kind = [k for k in self._items if k[0] == key[0]]
            limit = max(1, self.limits.get(key[0], self.max_per_kind))
            for old in same_kind[: max(0, len(same_kind) - limit + 1)]:
                del self._items[old]
            self._items[key] = value
            self.loads[key] = self.loads.get(key, 0) + 1

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._items)


def clip_identity(path: Path) -> tuple:
    """What identifies a clip's content for the cache: resolved path, mtime and size."""
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def file_key(kind: str, path: Path, device: Any) -> tuple:
    """Cache key of a weight file: a re-exported file (new mtime) is loaded again."""
    return (kind, *clip_identity(path), str(device))
