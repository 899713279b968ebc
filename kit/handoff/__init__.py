"""Getting visits off the kit: bundles, their verification, USB sticks, downloads and offload."""
