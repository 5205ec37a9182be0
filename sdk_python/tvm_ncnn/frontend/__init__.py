"""Import: ONNX, torch.export and Relax models into a Relax module with fixed shapes, and the rewrites that let
ncnn take more of it."""
