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

py::handle torch_dtype(TorchDType d) {
  // Leaked on purpose: the dtypes live as long as torch, and a static py::object would
  // be released after the interpreter has gone.
  static PyObject** cache = [] {
    auto** c = new PyObject*[6];
    const char* names[] = {"float32", "float64", "int64", "int32", "uint8", "bool"};
    py::module_ torch = py::module_::import("torch");
    for (int i = 0; i < 6; ++i) c[i] = py::object(torch.attr(names[i])).release().ptr();
    return c;
  }();
  return cache[static_cast<int>(d)];
}

namespace detail {

PyObject* const* tensor_attr_names() {
  static PyObject** names = [] {
    auto** n = new PyObject*[3];
    n[0] = PyUnicode_InternFromString("dtype");
    n[1] = PyUnicode_InternFromString("is_contiguous");
    n[2] = PyUnicode_InternFromString("data_ptr");
    return n;
  }();
  return names;
}

void not_a_tensor(py::handle t, const char* what) {
  throw py::type_error(std::string(what) + " must be a tensor or None, got " +
                       py::str(py::type::handle_of(t).attr("__name__")).cast<std::string>());
}

void wrong_dtype(py::handle dtype, const char* what, const char* want) {
  throw py::type_error(std::string(what) + " must be a " + want + " tensor, got " + py::str(dtype).cast<std::string>());
}

void not_contiguous(const char* what) { throw py::type_error(std::string(what) + " must be a contiguous tensor"); }

}  // namespace detail

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
