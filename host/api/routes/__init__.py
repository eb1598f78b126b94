"""One router per OpenAPI tag; ``tick2trade.host.api.create_app`` includes them in the
order the document lists them."""
