"""Scores kept on every profile: RFM quintiles and segments, and the lead score."""
