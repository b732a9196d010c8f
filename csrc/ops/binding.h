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

// torch's dtypes that the argument structs and entry points check against.
enum class TorchDType { Float32, Float64, Int64, Int32, UInt8, Bool };
py::handle torch_dtype(TorchDType d);

namespace detail {
// Interned attribute names (dtype, is_contiguous, data_ptr), made once.
PyObject* const* tensor_attr_names();
[[noreturn]] void not_a_tensor(py::handle t, const char* what);
[[noreturn]] void wrong_dtype(py::handle dtype, const char* what, const char* want);
[[noreturn]] void not_contiguous(const char* what);
}  // namespace detail

// The address of tensor `t` as an E* (nullptr for None). TypeError naming `what` unless
// t is a contiguous tensor of a dtype that E stores: float -> torch.float32, double ->
// torch.float64, int64_t -> torch.int64, int32_t -> torch.int32, uint8_t -> torch.uint8
// or torch.bool, void -> any. Runs for every tensor of every launch: plain C API calls.
template <typename E>
E* tensor_ptr(py::handle t, const char* what) {
  if (t.is_none()) return nullptr;
  PyObject* const* names = detail::tensor_attr_names();  // dtype, is_contiguous, data_ptr
  using B = std::remove_cv_t<E>;
  if constexpr (!std::is_void_v<B>) {
    const auto dt = py::reinterpret_steal<py::object>(PyObject_GetAttr(t.ptr(), names[0]));
    if (!dt) {
      PyErr_Clear();
      detail::not_a_tensor(t, what);
    }
    if constexpr (std::is_same_v<B, float>) {
      if (!dt.is(torch_dtype(TorchDType::Float32))) detail::wrong_dtype(dt, what, "torch.float32");
    } else if constexpr (std::is_same_v<B, double>) {
      if (!dt.is(torch_dtype(TorchDType::Float64))) detail::wrong_dtype(dt, what, "torch.float64");
    } else if constexpr (std::is_same_v<B, int64_t>) {
      if (!dt.is(torch_dtype(TorchDType::Int64))) detail::wrong_dtype(dt, what, "torch.int64");
    } else if constexpr (std::is_same_v<B, int32_t>) {
      if (!dt.is(torch_dtype(TorchDType::Int32))) detail::wrong_dtype(dt, what, "torch.int32");
    } else {
      static_assert(std::is_same_v<B, uint8_t>, "tensor_ptr: unsupported element type");
      if (!dt.is(torch_dtype(TorchDType::UInt8)) && !dt.is(torch_dtype(TorchDType::Bool))) {
        detail::wrong_dtype(dt, what, "torch.uint8 or torch.bool");
      }
    }
  }
  const auto contiguous = py::reinterpret_steal<py::object>(PyObject_CallMethodObjArgs(t.ptr(), names[1], nullptr));
  if (!contiguous) {
    if (!std::is_void_v<B> || !PyErr_ExceptionMatches(PyExc_AttributeError)) throw py::error_already_set();
    PyErr_Clear();
    detail::not_a_tensor(t, what);
  }
  if (contiguous.ptr() != Py_True) detail::not_contiguous(what);
  const auto address = py::reinterpret_steal<py::object>(PyObject_CallMethodObjArgs(t.ptr(), names[2], nullptr));
  if (!address) throw py::error_already_set();
  return reinterpret_cast<E*>(address.cast<uintptr_t>());
}

// Python class for argument struct S: S(**fields) with every field, read/write
// attributes, a repr. `field` adds one member; `done` defines the constructor.
template <typename S>
class StructBinding {
 public:
  using Struct = S;

  StructBinding(py::handle scope, const std::string& name)
      : name_(name), cls_(scope, name.c_str(), py::module_local()), fields_(std::make_shared<std::vector<Field>>()) {}

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
    fields_->push_back({name, py::reinterpret_steal<py::object>(PyUnicode_InternFromString(name)), set});
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
    auto fields = fields_;
    const std::string name = name_;
    cls_.def(py::init([fields, name](const py::kwargs& kw) {
      S s{};
      for (const Field& f : *fields) {
        PyObject* v = PyDict_GetItemWithError(kw.ptr(), f.key.ptr());  // borrowed
        if (!v) {
          if (PyErr_Occurred()) throw py::error_already_set();
          throw py::type_error(name + " needs every field: '" + f.name + "' is missing");
        }
        f.set(s, v);
      }
      if (static_cast<size_t>(PyDict_Size(kw.ptr())) != fields->size()) {
        for (auto item : kw) {
          const std::string key = item.first.cast<std::string>();
          bool known = false;
          for (const Field& f : *fields) known = known || f.name == key;
          if (!known) throw py::type_error(name + " has no field '" + key + "'");
        }
      }
      return s;
    }));
    cls_.def("__repr__", [fields, name](py::handle self) {
      std::string out = name + "(";
      for (size_t i = 0; i < fields->size(); ++i) {
        const std::string& n = (*fields)[i].name;
        out += (i ? ", " : "") + n + "=" + py::repr(self.attr(n.c_str())).cast<std::string>();
      }
      return out + ")";
    });
    return cls_;
  }

 private:
  struct Field {
    std::string name;
    py::object key;  // interned name, for the keyword lookup
    std::function<void(S&, py::handle)> set;
  };
  std::string name_;
  py::class_<S> cls_;
  std::shared_ptr<std::vector<Field>> fields_;
};

template <typename T>
constexpr const char* dtype_name() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "argument structs hold float or double");
  return std::is_same_v<T, float> ? "float32" : "float64";
}
template <typename T>
constexpr TorchDType torch_dtype_of() {
  return std::is_same_v<T, float> ? TorchDType::Float32 : TorchDType::Float64;
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
          by_dtype[torch_dtype(torch_dtype_of<T>())] = s.done();
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
  if (dt.is(torch_dtype(TorchDType::Float32))) return f(float());
  if (dt.is(torch_dtype(TorchDType::Float64))) return f(double());
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
