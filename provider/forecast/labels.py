"""The behaviour segments' codes and their names in words (no heavy imports: the worklist and dunning use them)."""

SEGMENTS = ("pays_on_time", "pays_late", "slow_and_partial", "promises_and_breaks", "silent", "new")
SEGMENT_LABELS = {
    "pays_on_time": "Pays on time",
    "pays_late": "Pays late but pays",
    "slow_and_partial": "Slow and partial",
    "promises_and_breaks": "Promises and breaks",
    "silent": "Silent",
    "new": "New",
}
