"""The console's vocabulary for the domain's terms: HCP Packer's web UI says versions and artifacts, as
the 2023-01-01 API does."""

from packyard.http.hcp_2023.words import WORDS

__all__ = ["WORDS"]
