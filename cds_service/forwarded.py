"""Which reverse proxies are believed about the client: X-Forwarded-For and X-Request-ID from a configured proxy
address (IVIG_CDS_TRUSTED_PROXIES), and from nobody else.

What they are used for: the client address and the request id written in the logs, nothing else. They decide no
access and no token check: a JWT's audience is the configured public URL (auth.audience_of), never a URL built
from Host or X-Forwarded-Host/-Proto, so a proxy that is misconfigured, or a header forged past it, can make a log
line wrong but cannot make a token for another deployment pass. Believing them only from the proxies' addresses
(the peer of the TCP connection, which a client cannot choose) keeps even the logs honest: a client that talks to
the service directly, or adds its own X-Forwarded-For in front of the proxy's, is logged at its real address.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: what a request id may look like (nginx's $request_id is 32 hex digits; a UUID fits too): nothing that could
#: break a log line or smuggle text into it
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class TrustedProxies:
    """The configured proxy networks, and what their headers say."""

    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self.networks = tuple(networks)

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The address of the client: the peer, or, when the peer is a trusted proxy, the last address in
        X-Forwarded-For that is not one (read from the right: each proxy appends the address it was called from,
        and only the entries our proxies added can be believed; anything left of them the client wrote)."""
        if not self.trusts(peer) or not forwarded_for:
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop if _is_address(hop) else peer
        return hops[0] if hops else peer

    def request_id(self, peer: str | None, header: str | None) -> str:
        """The request id a trusted proxy sent (so that its log and ours name the request alike), else a new one."""
        if header and self.trusts(peer) and _REQUEST_ID.fullmatch(header):
            return header
        return uuid.uuid4().hex


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
