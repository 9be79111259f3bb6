"""`python -m clickstream_assets_tests.iam_moto_server PORT`: moto's server, with one fix to
its IAM signature check.

moto recomputes a request's SigV4 signature from the URL its web server hands over, whose
query string arrives percent-decoded: a signed `prefix=landing%2Facme%2F` is re-signed as
`prefix=landing/acme/`, so every listing with a `/` in Prefix or StartAfter fails with
SignatureDoesNotMatch once IAM is enforced. Re-encoding the query the way SigV4 (and
botocore) canonicalize it restores the check; nothing else about moto changes.
"""

from __future__ import annotations

import sys
from urllib.parse import quote, unquote, urlsplit, urlunsplit

SIGV4_SAFE = "-_.~"


def sigv4_query(query: str) -> str:
    """Each name and value percent-encoded as SigV4 canonicalizes them."""
    pairs = (p.partition("=") for p in query.split("&") if p)
    return "&".join(f"{quote(unquote(k), safe=SIGV4_SAFE)}{eq}{quote(unquote(v), safe=SIGV4_SAFE)}"
                    for k, eq, v in pairs)


def patch_moto() -> None:
    from moto.iam.access_control import IAMRequestBase  # noqa: PLC0415

    original = IAMRequestBase._create_aws_request

    def create_aws_request(self):
        request = original(self)
        parts = urlsplit(request.url)
        request.url = urlunsplit(parts._replace(query=sigv4_query(parts.query)))
        return request

    IAMRequestBase._create_aws_request = create_aws_request


if __name__ == "__main__":
    patch_moto()
    from moto.server import main  # noqa: PLC0415

    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
