"""What model.so's metadata says, one table per fact: precisions, preprocessing (resize modes), post-processing
(tasks, detector layouts). Mirrored by runtime/src/meta/ in C++; a test holds the two sides equal."""
