"""HCP Packer Service API 2023-01-01: buckets, versions, builds, artifacts, channels, registry, run tasks.

A second projection of the same domain as hcp_2021: a 2023 version is a 2021 iteration (same id),
an artifact a 2021 image, a bucket's name its 2021 slug."""
