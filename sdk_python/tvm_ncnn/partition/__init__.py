"""Partition: ncnn's pattern table (ncnn/ops/) over the Relax module, whole regions, batch loops, and the
placement report (each op, where it runs and why not ncnn)."""
