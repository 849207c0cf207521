"""`python -I /opt/probe.py /healthz` in the images: the containers' health check.

The official slim Python image has no curl or wget; this asks the service on its own port
(the PORT setting) with the standard library and exits 0 only on a 2xx answer. It imports only
the standard library: the image copies this file on its own (deploy/docker/Dockerfile), so that
a check does not pay for importing the kit. `python -m servicekit.probe` works too.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/healthz"
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
