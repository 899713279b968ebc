"""Recording: raw streams to disk while filming, an MP4 when the take stops."""
