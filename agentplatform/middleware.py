"""Cross-cutting request middleware."""

from __future__ import annotations

import logging

from agentplatform import request_id

logger = logging.getLogger(__name__)


class RequestIdMiddleware:
    """Gives every request a correlation id and returns it on every response.

    Outermost in ``MIDDLEWARE`` so errors raised by any inner middleware still get the header:
    Django converts them to responses inside the chain, and this layer stamps them on the way out.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        value = request_id.accept_or_generate(request.META.get(request_id.META_KEY))
        token = request_id.set_request_id(value)
        request.request_id = value
        try:
            response = self.get_response(request)
        finally:
            request_id.reset_request_id(token)
        response[request_id.HEADER] = value
        return response
