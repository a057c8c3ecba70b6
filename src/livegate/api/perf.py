"""Small hot-path fixes measured on the webcast fetch path.

httpcore asks `import sniffio` on every connection-pool operation to learn the async library.
sniffio is no longer installed (anyio 4.16 dropped it), and a failed import is not cached, so
each upstream request paid four or five filesystem searches of sys.path: about 0.9 ms per
`GET /webcast/fetch` on the benchmark machine. Recording the absence in `sys.modules` makes
the failed import immediate; httpcore then assumes asyncio, which is what livegate runs on.
"""

from __future__ import annotations

import importlib.util
import sys


def cache_missing_sniffio() -> None:
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
