"""Data-preparation stages: audio I/O, separation, slicing, ASR and the .list label model."""
