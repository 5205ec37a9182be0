"""export(): checks, import, partition, int8 calibration when asked, and the one build step -> model.so."""
