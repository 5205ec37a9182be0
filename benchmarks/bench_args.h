// The options that follow the positional arguments of ncnn_bench and ncnn_detect_bench: "--name VALUE" pairs and
// "--name" flags, each handed to the caller's setter, so both programs read their command lines one way.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace bench_args {

struct Option {
  const char* name;
  std::function<void(const std::string& value)> set;  // a flag's value is ""
  bool flag = false;                                   // takes no value
};

// Reads argv: `positional` arguments, then `options`. False, after "usage: <usage>" (too few arguments),
// "<program>: unknown option X" or "<program>: X needs a value" on stderr, when the command line is not that.
// `usage` starts with the program's name.
inline bool Parse(int argc, char** argv, const char* usage, int positional, const std::vector<Option>& options) {
  if (argc < 1 + positional) {
    std::fprintf(stderr, "usage: %s\n", usage);
    return false;
  }
  const std::string usage_text = usage;
  const std::string program = usage_text.substr(0, usage_text.find(' '));
  for (int i = 1 + positional; i < argc; ++i) {
    const std::string a = argv[i];
    const Option* option = nullptr;
    for (const Option& o : options) {
      if (a == o.name) option = &o;
    }
    if (option == nullptr) {
      std::fprintf(stderr, "%s: unknown option %s\n", program.c_str(), a.c_str());
      return false;
    }
    if (!option->flag && i + 1 >= argc) {
      std::fprintf(stderr, "%s: %s needs a value\n", program.c_str(), a.c_str());
      return false;
    }
    option->set(option->flag ? std::string() : std::string(argv[++i]));
  }
  return true;
}

}  // namespace bench_args
