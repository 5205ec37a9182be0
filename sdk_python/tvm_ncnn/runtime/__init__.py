"""Running a model.so in this process: the native runtime library, load(), images, detection post-processing."""
