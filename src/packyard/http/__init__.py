"""The HTTP layer: parse, authorize, call the domain, project to HCP's wire format. No rules, no SQL."""
