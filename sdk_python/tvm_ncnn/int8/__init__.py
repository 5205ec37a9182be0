"""int8 calibration: activation scales, bias correction, layers kept fp32, accuracy against fp32 -> a Plan for
the build (ncnn/quantize.py writes it)."""
