// Run a model.so exported by the tvm-ncnn SDK on a .npy tensor and save its first output.
//   hello_tvm_ncnn model.so input.npy output.npy
#include <tvm_ncnn/runtime.h>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s model.so input.npy output.npy\n", argv[0]);
    return 2;
  }
  try {
    tvm_ncnn::Model model = tvm_ncnn::Model::Load(argv[1]);  // threads: this machine's big cores
    tvm_ncnn::Tensor input = tvm_ncnn::LoadNpy(argv[2]);
    std::vector<tvm_ncnn::Tensor> outputs = model.Run({input});
    tvm_ncnn::SaveNpy(argv[3], outputs.at(0));
    std::printf("%s: %d ncnn region(s), %d thread(s), output %s; runtime %s (TVM %s, ncnn %s)\n",
                argv[1], model.info().ncnn_regions, model.threads(),
                tvm_ncnn::ShapeString(outputs[0].shape).c_str(), tvm_ncnn::SdkVersion(),
                tvm_ncnn::TvmVersion(), tvm_ncnn::NcnnVersion());
  } catch (const tvm_ncnn::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
