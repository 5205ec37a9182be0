"""model.so as a file: its sections and metadata read from its bytes (never loaded), signatures, describe."""
