#include "ops/binding.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pyface {

namespace {
std::vector<std::pair<std::string, BindingFn>>& registered() {
  static std::vector<std::pair<std::string, BindingFn>> fns;  // filled before the module's init runs
  return fns;
}
}  // namespace

py::handle torch_dtype(const char* name) {
  // Leaked on purpose: the dtypes live as long as torch, and a static py::object would
  // be released after the interpreter has gone.
  static auto* cache = new std::map<std::string, py::object>();
  auto it = cache->find(name);
  if (it == cache->end()) it = cache->emplace(name, py::module_::import("torch").attr(name)).first;
  return it->second;
}

int register_bindings(const char* name, BindingFn fn) {
  registered().emplace_back(name, fn);
  return 0;
}

void run_bindings(Bindings& b) {
  auto fns = registered();
  std::sort(fns.begin(), fns.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& entry : fns) entry.second(b);
}

}  // namespace pyface
