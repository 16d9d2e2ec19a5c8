"""Audiences out of segments: member data for export (fields.py, members.py), the CSV
export (export.py), identifiers hashed the way advertising platforms match them
(hashing.py), and continuous sync of a segment's additions and removals to a webhook
(delta.py, store.py, sync.py, destinations.py)."""
