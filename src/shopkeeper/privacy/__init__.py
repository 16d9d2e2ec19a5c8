"""Privacy: export everything held about a person, erase it, and keep it erased
(the suppression list)."""
