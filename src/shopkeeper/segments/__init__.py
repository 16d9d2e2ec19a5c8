"""Segments: the segment language, membership, scores and audiences."""
