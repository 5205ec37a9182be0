// Run a model.so exported by the tvm-ncnn SDK:
//   hello_tvm_ncnn model.so input.npy output.npy   a .npy tensor in, the first output saved as .npy
//   hello_tvm_ncnn model.so frame.jpg [FRAMES]      a camera loop over one photo: FRAMES runs (default 100)
#include <tvm_ncnn/detect.h>
#include <tvm_ncnn/runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

// What a camera app does per frame. A camera hands over its buffer as tvm_ncnn::Pixels (pointer, size, format,
// row stride); here every frame is the same decoded photo. The input tensor and the outputs are made on the first
// frame and refilled in place after that: the loop allocates nothing frame-sized.
void CameraLoop(tvm_ncnn::Model& model, const std::string& photo, int frames) {
  const tvm_ncnn::Image image = tvm_ncnn::DecodeImage(photo);  // JPEG/PNG/BMP -> B,G,R pixels
  tvm_ncnn::Tensor input;
  std::vector<tvm_ncnn::Tensor> outputs;
  tvm_ncnn::ImageTransform where;  // where the frame landed in the input: maps boxes back to the frame
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < frames; ++i) {
    tvm_ncnn::PreprocessImage(image.pixels(), model.info(), &input, &where);
    model.Run({input}, &outputs);
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d frames, %.2f ms each\n", frames, ms / frames);

  const std::string& task = model.info().postprocess.task;
  if (task == "detect" || task == "segment" || task == "pose") {
    const std::vector<tvm_ncnn::Detection> found = tvm_ncnn::Detect(outputs, model.info(), where);
    tvm_ncnn::Image shown = image;
    tvm_ncnn::DrawDetections(&shown, found);  // onto the pixels; SaveImage writes them
    tvm_ncnn::SaveImage(shown, "detections.jpg");
    std::printf("%zu detection(s), drawn in detections.jpg\n", found.size());
  } else {
    const tvm_ncnn::TopK top = tvm_ncnn::ScoreTopK(outputs.at(0), model.info().labels, 1);
    const tvm_ncnn::ScoredClass& best = top.classes.at(0);
    std::printf("class %lld %s: %.3f (%s)\n", static_cast<long long>(best.index), best.label.c_str(), best.score,
                top.kind.c_str());
  }
}

bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

int main(int argc, char** argv) {
  const bool npy = argc >= 3 && EndsWith(argv[2], ".npy");
  const int frames = !npy && argc == 4 ? std::atoi(argv[3]) : 100;
  if (argc < 3 || argc > 4 || (npy && argc != 4) || frames < 1) {
    std::fprintf(stderr, "usage: %s model.so input.npy output.npy\n       %s model.so frame.jpg [FRAMES]\n", argv[0],
                 argv[0]);
    return 2;
  }
  try {
    tvm_ncnn::Model model = tvm_ncnn::Model::Load(argv[1]);  // threads: this machine's big cores
    if (!npy) {
      CameraLoop(model, argv[2], frames);
      return 0;
    }
    std::vector<tvm_ncnn::Tensor> outputs = model.Run({tvm_ncnn::LoadNpy(argv[2])});
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
