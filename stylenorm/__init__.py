"""stylenorm."""
