#include "ncnn/steady_pool.h"

namespace tvm_ncnn {
namespace {

// Free blocks kept beyond this are released, smallest first, when a new block is needed: a dynamic-size model
// whose frames grow keeps the blocks of its latest sizes, not every size it ever ran (ncnn's pool keeps 10).
constexpr size_t kMaxFree = 16;

}  // namespace

SteadyPool::~SteadyPool() {
  for (const Block& b : blocks_) ncnn::fastFree(b.data);
}

void* SteadyPool::fastMalloc(size_t size) {
  Block* best = nullptr;
  size_t free_blocks = 0;
  for (Block& b : blocks_) {
    if (b.used) continue;
    ++free_blocks;
    if (b.size >= size && (best == nullptr || b.size < best->size)) best = &b;
  }
  if (best != nullptr) {
    best->used = true;
    return best->data;
  }
  if (free_blocks >= kMaxFree) DropSmallestFree();
  void* data = ncnn::fastMalloc(size);
  if (data != nullptr) blocks_.push_back({data, size, true});
  return data;
}

void SteadyPool::fastFree(void* ptr) {
  for (Block& b : blocks_) {
    if (b.data == ptr) {
      b.used = false;
      return;
    }
  }
  ncnn::fastFree(ptr);  // not ours (cannot happen through ncnn's Mat): release it as ncnn would
}

void SteadyPool::DropSmallestFree() {
  auto smallest = blocks_.end();
  for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
    if (!it->used && (smallest == blocks_.end() || it->size < smallest->size)) smallest = it;
  }
  if (smallest == blocks_.end()) return;
  ncnn::fastFree(smallest->data);
  blocks_.erase(smallest);
}

}  // namespace tvm_ncnn
