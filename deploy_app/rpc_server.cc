// tvm_ncnn_rpc_server: a board joins TVM's RPC tracker with one command, so `tvm-ncnn tune` measures candidate
// schedules on it and `tvm-ncnn bench --rpc-tracker` times whole model.so files there.
//
//   ./tvm_ncnn_rpc_server --tracker HOST:PORT --key rpi4 [--port 9090] [--custom-addr IP]
//
// The RPC protocol itself is TVM's, from the bundled libtvm_runtime.so (its global rpc.ServerLoop serves one
// session on a connected socket, and it registers tvm.rpc.server.upload/download/remove); what TVM's Python
// server adds around it is done here: listening, the tracker's registration and match keys, the session
// handshake, one forked process per session in its own temporary directory (a crash ends the session, not the
// server), the session timeout. The functions a session needs that the runtime library lacks are registered
// here: the work directory, load_module (model.so files load too: libtvm_ncnn_runtime is linked), MetaSchedule's
// random_fill_for_measure, and tvm_ncnn.rpc.bench, which times a model.so as deploy_app --json does.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include "measure.h"
#include "tvm_ncnn/runtime.h"

namespace {

using tvm::ffi::Function;

constexpr int32_t kRpcMagic = 0xff271;         // TVM's data-plane handshake (python/tvm/rpc/base.py)
constexpr int32_t kTrackerMagic = 0x2f271;     // and the tracker's
constexpr int32_t kCodeMismatch = kRpcMagic + 2;
enum TrackerCode { kSuccess = 0, kPut = 3, kUpdateInfo = 5, kGetPendingMatchKeys = 7 };

struct Args {
  std::string tracker_host, key = "rpi", host = "0.0.0.0", custom_addr;
  int tracker_port = 0, port = 9090, port_end = 9199;
};

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "tvm_ncnn_rpc_server: error: %s\n", message.c_str());
  std::exit(1);
}

void Log(const std::string& message) {
  std::fprintf(stderr, "tvm_ncnn_rpc_server: %s\n", message.c_str());
  std::fflush(stderr);
}

bool SendAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool RecvAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t k = recv(fd, p, n, 0);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

// Tracker messages are JSON with an int32 length in front (base.sendjson / recvjson).
bool SendMessage(int fd, const std::string& text) {
  int32_t n = static_cast<int32_t>(text.size());
  return SendAll(fd, &n, 4) && SendAll(fd, text.data(), text.size());
}

bool RecvMessage(int fd, std::string* text) {
  int32_t n = 0;
  if (!RecvAll(fd, &n, 4) || n < 0 || n > (1 << 20)) return false;
  text->resize(static_cast<size_t>(n));
  return RecvAll(fd, text->data(), text->size());
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }  // keys and addresses: no quotes inside

int Connect(const std::string& host, int port) {
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  return fd;
}

// The tracker connection: registered once (UPDATE_INFO), then one PUT per session offered.
class Tracker {
 public:
  Tracker(const Args& args, int port) : args_(args), port_(port) {}
  bool enabled() const { return !args_.tracker_host.empty(); }

  void Open() {
    for (int attempt = 0; fd_ < 0; ++attempt) {  // the tracker may start after the board: retry for a minute
      fd_ = Connect(args_.tracker_host, args_.tracker_port);
      if (fd_ >= 0) break;
      if (attempt == 12) {
        Fail("cannot connect to the tracker " + args_.tracker_host + ":" + std::to_string(args_.tracker_port));
      }
      std::this_thread::sleep_for(std::chrono::seconds(5));
    }
    int32_t magic = kTrackerMagic;
    if (!SendAll(fd_, &magic, 4) || !RecvAll(fd_, &magic, 4) || magic != kTrackerMagic) {
      Fail(args_.tracker_host + ":" + std::to_string(args_.tracker_port) + " is not a TVM RPC tracker");
    }
    Request("[" + std::to_string(kUpdateInfo) + ", {\"key\": " + Quoted("server:" + args_.key) +
            ", \"addr\": [" + Addr() + ", " + std::to_string(port_) + "]}]");
  }

  // Offers one session under a fresh match key, which the tracker hands to the next client asking for the key.
  std::string Put() {
    match_key_ = args_.key + ":" + std::to_string(std::uniform_real_distribution<double>(0, 1)(rng_));
    Request("[" + std::to_string(kPut) + ", " + Quoted(args_.key) + ", [" + std::to_string(port_) + ", " +
            Quoted(match_key_) + "], " + Addr() + "]");
    return match_key_;
  }

  // While idle: a key the tracker gave a client that never came is withdrawn after a few seconds, as TVM's
  // server does, so that the next client is not sent to a dead key.
  std::string KeepAlive(int* unmatched_polls) {
    std::string pending = Request("[" + std::to_string(kGetPendingMatchKeys) + "]");
    *unmatched_polls = pending.find(Quoted(match_key_)) == std::string::npos ? *unmatched_polls + 1 : 0;
    if (*unmatched_polls >= 3) {
      *unmatched_polls = 0;
      return Put();
    }
    return match_key_;
  }

  int fd() const { return fd_; }

 private:
  std::string Addr() const { return args_.custom_addr.empty() ? "null" : Quoted(args_.custom_addr); }

  std::string Request(const std::string& message) {
    std::string reply;
    if (!SendMessage(fd_, message) || !RecvMessage(fd_, &reply)) Fail("the tracker closed the connection");
    if (message[1] != '0' + kGetPendingMatchKeys && reply != std::to_string(kSuccess)) {
      Fail("the tracker refused " + message + ": " + reply);
    }
    return reply;
  }

  const Args& args_;
  int port_;
  int fd_ = -1;
  std::string match_key_;
  std::mt19937_64 rng_{std::random_device{}()};
};

// ---- what a session calls -----------------------------------------------------------------------------------

std::string g_workdir;  // this session's directory (set in the forked process)

std::string WorkPath(const std::string& name) {
  if (name.empty()) return g_workdir;  // the directory itself (RPCRunner's cleanup asks for it)
  if (name.find("..") != std::string::npos || name[0] == '/') {
    throw std::runtime_error("RPC file name '" + name + "' must be relative, without '..'");
  }
  return g_workdir + "/" + name;
}

// MetaSchedule's runner fills each argument of a candidate with random data before timing it (a remote tensor
// arrives as a DLTensor*).
void RandomFill(DLTensor* t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; ++i) n *= t->shape[i];
  std::mt19937 rng(12345);
  char* data = static_cast<char*>(t->data) + t->byte_offset;
  const int bytes = (t->dtype.bits * t->dtype.lanes + 7) / 8;
  for (int64_t i = 0; i < n; ++i) {
    char* p = data + i * bytes;
    if (t->dtype.code == kDLFloat && t->dtype.bits == 32) {
      *reinterpret_cast<float*>(p) = std::uniform_real_distribution<float>(-1, 1)(rng);
    } else if (t->dtype.code == kDLFloat && t->dtype.bits == 64) {
      *reinterpret_cast<double*>(p) = std::uniform_real_distribution<double>(-1, 1)(rng);
    } else if (t->dtype.code == kDLFloat && t->dtype.bits == 16) {
      *reinterpret_cast<uint16_t*>(p) = static_cast<uint16_t>(0x3800 + rng() % 0x0800);  // 0.5 .. 1.0
    } else {
      std::memset(p, 0, static_cast<size_t>(bytes));
      p[0] = static_cast<char>(rng() % 4);  // small non-negative integers: valid indices of any axis
    }
  }
}

// Load, first run and steady p50/p90 over `repeat` runs, measured as deploy_app measures them (measure.h).
std::string Bench(const std::string& model_name, const std::string& input_name, int threads, int repeat,
                  const std::string& precision) {
  using measure::MsSince;
  // TVM's pool reads TVM_NUM_THREADS when it starts, which is in this session's first model run.
  if (threads > 0) setenv("TVM_NUM_THREADS", std::to_string(threads).c_str(), 1);
  tvm_ncnn::Options options;
  options.threads = threads;
  options.precision = precision;
  auto t0 = std::chrono::steady_clock::now();
  tvm_ncnn::Model model = tvm_ncnn::Model::Load(WorkPath(model_name), options);
  const double load_ms = MsSince(t0);
  const std::string input = WorkPath(input_name);
  const bool npy = input.size() > 4 && input.compare(input.size() - 4, 4, ".npy") == 0;
  std::vector<tvm_ncnn::Tensor> inputs{npy ? tvm_ncnn::LoadNpy(input) : tvm_ncnn::LoadImage(input, model.info())};
  t0 = std::chrono::steady_clock::now();
  model.Run(inputs);
  const double first_ms = MsSince(t0);
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    t0 = std::chrono::steady_clock::now();
    model.Run(inputs);
    times.push_back(MsSince(t0));
  }
  char text[512];
  std::snprintf(text, sizeof(text),
                "{\"load_ms\": %.3f, \"first_ms\": %.3f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"threads\": %d, "
                "\"precision\": \"%s\", \"repeat\": %d, \"rss_mb\": %.1f}",
                load_ms, first_ms, times.empty() ? first_ms : measure::Percentile(times, 0.5),
                times.empty() ? first_ms : measure::Percentile(times, 0.9), model.threads(),
                model.precision().c_str(), repeat, measure::PeakRssMb());
  return text;
}

void RegisterSessionFunctions() {
  Function::SetGlobal("tvm.rpc.server.workpath",
                      Function::FromTyped([](std::string name) { return WorkPath(name); }), true);
  Function::SetGlobal("tvm.rpc.server.load_module", Function::FromTyped([](std::string name) {
                        return tvm::ffi::Module::LoadFromFile(WorkPath(name));
                      }), true);
  Function::SetGlobal("tvm.contrib.random.random_fill_for_measure", Function::FromTyped(RandomFill), true);
  Function::SetGlobal("tvm_ncnn.rpc.bench", Function::FromTyped(Bench), true);
}

// One session: its own process and directory; killed at the client's -timeout.
void Serve(int conn, double timeout_s) {
  char tmpl[] = "/tmp/tvm_ncnn_rpc.XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (dir == nullptr) Fail("cannot create a session directory in /tmp");
  pid_t child = fork();
  if (child == 0) {
    g_workdir = dir;
    if (chdir(dir) != 0) _exit(1);
    RegisterSessionFunctions();
    auto loop = Function::GetGlobal("rpc.ServerLoop");
    if (!loop) _exit(2);
    try {
      (*loop)(conn);
    } catch (const std::exception& e) {
      Log(std::string("session ended: ") + e.what());
    }
    _exit(0);
  }
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  while (child > 0 && waitpid(child, &status, WNOHANG) == 0) {
    if (timeout_s > 0 && measure::MsSince(start) > timeout_s * 1e3) {
      Log("session timed out after " + std::to_string(static_cast<int>(timeout_s)) + " s: ended");
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  close(conn);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Fail(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--tracker") {
      std::string t = value();
      size_t colon = t.rfind(':');
      if (colon == std::string::npos) Fail("--tracker '" + t + "' is not HOST:PORT");
      a.tracker_host = t.substr(0, colon);
      a.tracker_port = std::atoi(t.c_str() + colon + 1);
    } else if (arg == "--key") {
      a.key = value();
    } else if (arg == "--host") {
      a.host = value();
    } else if (arg == "--port") {
      a.port = std::atoi(value().c_str());
      a.port_end = std::max(a.port_end, a.port + 1);
    } else if (arg == "--custom-addr") {
      a.custom_addr = value();
    } else if (arg == "--help" || arg == "-h") {
      std::printf("usage: tvm_ncnn_rpc_server --tracker HOST:PORT --key KEY [--host ADDR] [--port N] "
                  "[--custom-addr IP]\n  Joins TVM's RPC tracker under KEY (e.g. rpi4): tvm-ncnn tune and "
                  "tvm-ncnn bench --rpc-tracker HOST:PORT --rpc-key KEY then run on this board.\n");
      std::exit(0);
    } else {
      Fail("unknown argument '" + arg + "' (see --help)");
    }
  }
  if (a.key.find_first_of("\" :\\") != std::string::npos) Fail("--key must not contain quotes, spaces or ':'");
  return a;
}

int Listen(const Args& a, int* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (inet_pton(AF_INET, a.host.c_str(), &addr.sin_addr) != 1) Fail("--host '" + a.host + "' is not an IPv4 address");
  for (*port = a.port; *port < a.port_end; ++*port) {
    addr.sin_port = htons(static_cast<uint16_t>(*port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd, 4) == 0) return fd;
  }
  Fail("cannot listen on any port in [" + std::to_string(a.port) + ", " + std::to_string(a.port_end) + ")");
}

}  // namespace

int main(int argc, char** argv) {
  Args args = Parse(argc, argv);
  tvm_ncnn::CoordinateThreads(0, argv);  // as deploy_app: the thread policy, libgomp's spin count included
  int port = 0;
  const int listen_fd = Listen(args, &port);
  Tracker tracker(args, port);
  if (tracker.enabled()) tracker.Open();
  Log("serving key '" + args.key + "' on port " + std::to_string(port) +
      (tracker.enabled() ? " via tracker " + args.tracker_host + ":" + std::to_string(args.tracker_port) : ""));
  for (;;) {
    std::string match_key = tracker.enabled() ? tracker.Put() : args.key;
    int unmatched = 0;
    for (;;) {
      pollfd p{listen_fd, POLLIN, 0};
      if (poll(&p, 1, 2000) > 0) break;
      if (tracker.enabled()) match_key = tracker.KeepAlive(&unmatched);
    }
    int conn = accept(listen_fd, nullptr, nullptr);
    if (conn < 0) continue;
    int32_t magic = 0, len = 0;
    std::string key;
    if (!RecvAll(conn, &magic, 4) || magic != kRpcMagic || !RecvAll(conn, &len, 4) || len < 0 || len > 4096) {
      close(conn);
      continue;
    }
    key.resize(static_cast<size_t>(len));
    if (!RecvAll(conn, key.data(), key.size())) {
      close(conn);
      continue;
    }
    // "client:<match key> -timeout=<s>"
    const std::string first = key.substr(0, key.find(' '));
    if (first != "client:" + match_key) {
      int32_t code = kCodeMismatch;
      SendAll(conn, &code, 4);
      close(conn);
      continue;
    }
    double timeout = 0;
    const size_t t = key.find("-timeout=");
    if (t != std::string::npos) timeout = std::atof(key.c_str() + t + 9);
    const std::string server_key = "server:" + args.key;
    int32_t code = kRpcMagic, server_len = static_cast<int32_t>(server_key.size());
    if (!SendAll(conn, &code, 4) || !SendAll(conn, &server_len, 4) ||
        !SendAll(conn, server_key.data(), server_key.size())) {
      close(conn);
      continue;
    }
    Serve(conn, timeout);
  }
}
