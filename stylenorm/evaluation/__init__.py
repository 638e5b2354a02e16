"""Judging stylized images: quality numbers (:mod:`.metrics`) and held-out contact sheets (:mod:`.sheet`)."""
