"""HCP Packer Service API 2021-04-30: buckets, iterations, builds, images, channels, registry."""
