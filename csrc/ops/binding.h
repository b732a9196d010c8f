// How a binding file adds itself to the extension module, with no central list.
//
//   PYFACE_BINDINGS(lpmc, b) {              // csrc/ops/lpmc.cpp
//     b.structs<LpmcArgs, float, double>("LpmcArgs", fields...);
//     b.cpu.def("lpmc_fwd_chunk", ...);      // a method of pyface._C.CpuKernels
//     b.cuda.def("lpmc_fwd_chunk", ...);     // of pyface._C.CudaKernels (#ifdef PYFACE_WITH_CUDA)
//   }
//
// The module's init (csrc/bindings.cpp) runs every registered binding function, in the
// order of their names.
//
// Kernel arguments cross into C++ as the ops' own argument structs (csrc/ops/<op>.h),
// bound as Python classes constructed with one keyword per field, every field required:
// a pointer field takes a contiguous torch tensor whose dtype matches the field's
// element type (or None: a null pointer), a number field a Python number. A struct
// template is bound once per element type and published as {torch dtype: class}.
// Entry points are methods of the backends' kernel objects: CpuKernels() runs the CPU
// kernels (on the instruction-set path chosen at import), CudaKernels(stream) launches
// the CUDA kernels on a raw cudaStream_t; pyface/ops/backends/ registers them with
// PyTorch. The extension reads tensors through their Python attributes (data_ptr,
// dtype) only: it does not link libtorch.
//
// Every class is module_local: pyface._C_emu (csrc/emu) binds the same C++ types again.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace pyface {

namespace py = pybind11;

struct CpuKernels {};
struct CudaKernels {
  void* stream;  // cudaStream_t
};

// The torch dtype object named `name` ("float32", ...), looked up once.
py::handle torch_dtype(const char* name);

// The address of tensor `t` as an E* (nullptr for None). TypeError naming `what` unless
// t is a contiguous tensor of a dtype that E stores: float -> torch.float32, double ->
// torch.float64, int64_t -> torch.int64, int32_t -> torch.int32, uint8_t -> torch.uint8
// or torch.bool, void -> any.
template <typename E>
E* tensor_ptr(py::handle t, const char* what) {
  if (t.is_none()) return nullptr;
  if (!py::hasattr(t, "data_ptr")) {
    throw py::type_error(std::string(what) + " must be a tensor or None, got " +
                         py::str(py::type::handle_of(t).attr("__name__")).cast<std::string>());
  }
  using B = std::remove_cv_t<E>;
  if constexpr (!std::is_void_v<B>) {
    const py::object dt = t.attr("dtype");
    bool ok;
    const char* want;
    if constexpr (std::is_same_v<B, float>) {
      want = "torch.float32", ok = dt.is(torch_dtype("float32"));
    } else if constexpr (std::is_same_v<B, double>) {
      want = "torch.float64", ok = dt.is(torch_dtype("float64"));
    } else if constexpr (std::is_same_v<B, int64_t>) {
      want = "torch.int64", ok = dt.is(torch_dtype("int64"));
    } else if constexpr (std::is_same_v<B, int32_t>) {
      want = "torch.int32", ok = dt.is(torch_dtype("int32"));
    } else {
      static_assert(std::is_same_v<B, uint8_t>, "tensor_ptr: unsupported element type");
      want = "torch.uint8 or torch.bool", ok = dt.is(torch_dtype("uint8")) || dt.is(torch_dtype("bool"));
    }
    if (!ok)
      throw py::type_error(std::string(what) + " must be a " + want + " tensor, got " +
                           py::str(dt).cast<std::string>());
  }
  if (!t.attr("is_contiguous")().cast<bool>()) throw py::type_error(std::string(what) + " must be a contiguous tensor");
  return reinterpret_cast<E*>(t.attr("data_ptr")().cast<uintptr_t>());
}

// Python class for argument struct S: S(**fields) with every field, read/write
// attributes, a repr. `field` adds one member; `done` defines the constructor.
template <typename S>
class StructBinding {
 public:
  using Struct = S;

  StructBinding(py::handle scope, const std::string& name)
      : name_(name), cls_(scope, name.c_str(), py::module_local()), setters_(std::make_shared<Setters>()) {}

  template <typename F>
  StructBinding& field(const char* name, F S::* member) {
    const std::string what = name_ + "." + name;
    std::function<void(S&, py::handle)> set = [member, what](S& s, py::handle v) {
      if constexpr (std::is_pointer_v<F>) {
        s.*member = tensor_ptr<std::remove_pointer_t<F>>(v, what.c_str());
      } else {
        try {
          s.*member = v.cast<F>();
        } catch (const py::cast_error&) {
          const char* want = std::is_same_v<F, bool> ? "a bool" : std::is_integral_v<F> ? "an int" : "a number";
          throw py::type_error(what + " must be " + want + ", got " +
                               py::str(py::type::handle_of(v).attr("__name__")).cast<std::string>());
        }
      }
    };
    setters_->emplace(name, set);
    names_.push_back(name);
    cls_.def_property(
        name,
        [member](const S& s) -> py::object {
          if constexpr (std::is_pointer_v<F>) {
            return py::int_(reinterpret_cast<uintptr_t>(s.*member));
          } else {
            return py::cast(s.*member);
          }
        },
        [set](S& s, py::handle v) { set(s, v); });
    return *this;
  }

  py::object done() {
    auto setters = setters_;
    const std::string name = name_;
    const std::vector<std::string> names = names_;
    cls_.def(py::init([setters, name, names](const py::kwargs& kw) {
      S s{};
      for (auto item : kw) {
        const std::string key = item.first.cast<std::string>();
        auto it = setters->find(key);
        if (it == setters->end()) throw py::type_error(name + " has no field '" + key + "'");
        it->second(s, item.second);
      }
      for (const auto& n : names) {
        if (!kw.contains(n)) throw py::type_error(name + " needs every field: '" + n + "' is missing");
      }
      return s;
    }));
    cls_.def("__repr__", [name, names](py::handle self) {
      std::string out = name + "(";
      for (size_t i = 0; i < names.size(); ++i) {
        out += (i ? ", " : "") + names[i] + "=" + py::repr(self.attr(names[i].c_str())).cast<std::string>();
      }
      return out + ")";
    });
    return cls_;
  }

 private:
  using Setters = std::map<std::string, std::function<void(S&, py::handle)>>;
  std::string name_;
  py::class_<S> cls_;
  std::shared_ptr<Setters> setters_;
  std::vector<std::string> names_;
};

template <typename T>
constexpr const char* dtype_name() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "argument structs hold float or double");
  return std::is_same_v<T, float> ? "float32" : "float64";
}

// What a binding function receives: the module, and the two kernel classes it adds
// entry points to.
struct Bindings {
  py::module_ m;
  py::class_<CpuKernels> cpu;
#ifdef PYFACE_WITH_CUDA
  py::class_<CudaKernels> cuda;
#endif

  // Binds argument struct S (fields(StructBinding<S>&) adds its members) as
  // pyface._C.<name>, also reachable from the kernel classes.
  template <typename S, typename Fields>
  void structure(const char* name, Fields&& fields) {
    StructBinding<S> s(m, name);
    fields(s);
    publish(name, s.done());
  }

  // Binds Tmpl<T> for each T as <name>_float32, ... and publishes
  // <name> = {torch.float32: <name>_float32, ...}.
  template <template <typename> class Tmpl, typename... T, typename Fields>
  void structs(const char* name, Fields&& fields) {
    py::dict by_dtype;
    (
        [&] {
          StructBinding<Tmpl<T>> s(m, std::string(name) + "_" + dtype_name<T>());
          fields(s);
          by_dtype[torch_dtype(dtype_name<T>())] = s.done();
        }(),
        ...);
    publish(name, by_dtype);
  }

 private:
  void publish(const char* name, py::object obj) {
    m.attr(name) = obj;
    cpu.attr(name) = obj;
#ifdef PYFACE_WITH_CUDA
    cuda.attr(name) = obj;
#endif
  }
};

// Calls f(T()) for each T: one body for the float and the double entry points.
template <typename... T, typename F>
void for_each_type(F&& f) {
  (f(T()), ...);
}

// Calls f(float()) or f(double()) for a float32 or float64 tensor t (TypeError naming
// `what` otherwise): for entry points whose only typed arguments are tensors.
template <typename F>
void by_float_dtype(py::handle t, const char* what, F&& f) {
  const py::object dt = py::getattr(t, "dtype", py::none());
  if (dt.is(torch_dtype("float32"))) return f(float());
  if (dt.is(torch_dtype("float64"))) return f(double());
  throw py::type_error(
      std::string(what) + " must be a torch.float32 or torch.float64 tensor, got " +
      (dt.is_none() ? py::str(py::type::handle_of(t).attr("__name__")) : py::str(dt)).cast<std::string>());
}

using BindingFn = void (*)(Bindings&);
// Records a binding function (at load time, from PYFACE_BINDINGS); returns a dummy.
int register_bindings(const char* name, BindingFn fn);
// Runs every recorded binding function, in the order of their names.
void run_bindings(Bindings& b);

}  // namespace pyface

#define PYFACE_BINDINGS(name, b)                                        \
  static void pyface_bindings_##name(::pyface::Bindings& b);            \
  [[maybe_unused]] static const int pyface_bindings_registered_##name = \
      ::pyface::register_bindings(#name, &pyface_bindings_##name);      \
  static void pyface_bindings_##name(::pyface::Bindings& b)
