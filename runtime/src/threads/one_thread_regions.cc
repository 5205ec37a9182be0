// OpenMP parallel regions asked for one thread run on the calling thread, with no team.
//
// Why: ncnn runs every layer's loops as `#pragma omp parallel for num_threads(opt.num_threads)`, which GCC turns
// into a call of libgomp's GOMP_parallel. For a team of one, libgomp mallocs a team and frees it again on every
// call -- it keeps the last team for reuse only when it has two threads or more. A model run at 1 thread (the
// default of a camera loop on one core, and of each caller when several share a model) made one allocation per
// parallel loop: 157 of mobilenetv2's 266 allocations a frame (issue #27: a loop allocates nothing per frame).
//
// How: the runtime is linked with --wrap=GOMP_parallel (runtime/CMakeLists.txt; for the static archive the app's
// link gets the option too), so every call of GOMP_parallel in ncnn's objects and ours comes here first. A region
// of one thread is then run as OpenMP runs a region whose team is the calling thread alone: the outlined body is
// called once, where omp_get_num_threads() is 1 and omp_get_thread_num() 0, so the loop takes all its iterations.
// That holds only when the caller is not a thread of a bigger team (the body would then see that team's size and
// do a share of the loop): inside one, libgomp's own nested team of one is made as before. Barriers in the body
// return at once with no team, as in a team of one.
#include <omp.h>

extern "C" {

// libgomp's GOMP_parallel under --wrap. Weak: an app that links the static archive without --wrap still links (and
// then never calls the wrapper).
__attribute__((weak)) void __real_GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);

__attribute__((visibility("hidden"))) void __wrap_GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads,
                                                                 unsigned flags) {
  if (num_threads == 1 && omp_get_num_threads() == 1) {
    fn(data);
    return;
  }
  __real_GOMP_parallel(fn, data, num_threads, flags);
}

}  // extern "C"
