"""The visit library: visits, takes, tags and their edits, labels, rough cuts and their files."""
