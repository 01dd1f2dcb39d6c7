"""Review: reviewers view media, place holds (R3) and export evidence;
supervisors release holds (R4)."""
