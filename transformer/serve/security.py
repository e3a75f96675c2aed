"""Which requests the explorer answers: every request is treated as hostile.

A server on 127.0.0.1 is reachable from every web page the user visits: the page's
JavaScript can send it requests (a "simple" cross-site POST needs no CORS preflight) and,
through DNS rebinding, a name the attacker controls can resolve to 127.0.0.1. So:

* :func:`check_host`: the ``Host`` header must name this server: 127.0.0.1, localhost,
  [::1], the address it was started on, or a name from ``--allow-host`` (403 otherwise;
  a rebinding page sends its own name); a request with two ``Host`` headers is a 400;
* :func:`check_origin`: an ``Origin`` header, when present, must be the server's own
  (browsers send it with every cross-site POST and ``fetch``; 403 otherwise);
* :func:`check_json_body`: an API body must be declared ``application/json`` (415
  otherwise; a cross-site form or ``text/plain`` request cannot declare it without a
  preflight, which this server never answers with CORS headers);
* :func:`harden_response`: no CORS headers, no content sniffing, no framing.
"""

from urllib.parse import urlsplit

from transformer.serve.errors import ApiError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # bind to every interface: not a name a client uses


def allowed_hosts(bind_host, extra=()):
    """The lower-case host names a request's ``Host`` may carry (ports are not compared)."""
    names = {*LOCAL_HOSTS, bind_host.strip("[]"), *(h.strip("[]") for h in extra)}
    return frozenset(name.lower() for name in names if name not in WILDCARD_HOSTS)


def host_name(host):
    """``"Example.org:8000"`` -> ``"example.org"``; ``"[::1]:8000"`` -> ``"::1"``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def check_host(host, allowed):
    """Refuse (403) a missing ``Host`` or one that is not in ``allowed``."""
    if not host:
        raise ApiError(403, "the request has no Host header")
    if "," in host:  # waitress joins repeated headers with ", "; no host name holds a comma
        raise ApiError(400, "the request has more than one Host header")
    if host_name(host) not in allowed:
        raise ApiError(
            403,
            f"Host {host_name(host)!r} is not one this server answers to "
            "(start it with --allow-host NAME to add one)",
        )


def check_origin(origin, host):
    """Refuse (403) an ``Origin`` that is not ``http(s)://`` + this request's ``Host``."""
    if origin is None:
        return  # not a browser's cross-origin request (curl, scripts, same-origin GET)
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.strip().lower():
        raise ApiError(403, f"cross-origin requests are refused (Origin {origin[:100]!r})")


def check_json_body(mimetype):
    """Refuse (415) a request body not declared as ``application/json``."""
    if mimetype != "application/json":
        raise ApiError(415, "the request body must be sent with Content-Type: application/json")


HARDENING_HEADERS = {  # on every answer: the app's (harden_response) and waitress's own (wsgi.py)
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def harden_response(response):
    """Headers that keep other sites from reading, sniffing or framing the answers."""
    response.headers.update(HARDENING_HEADERS)
    return response
