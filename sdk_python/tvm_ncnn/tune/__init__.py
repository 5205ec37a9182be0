"""`tvm-ncnn tune`: MetaSchedule search over the TVM part, locally or on a board through an RPC tracker."""
