"""ncnn regions: the graph and its .param/.bin writer, one converter module per op family (ops/), the graph
passes, int8 layers, and the relax.ext.ncnn codegen."""
