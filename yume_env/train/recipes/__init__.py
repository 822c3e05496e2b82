"""Scripts that chain the stages into a shipped model (`default_world`)."""
