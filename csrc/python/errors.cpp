#include "errors.h"

#include <map>
#include <mutex>

#include "bindings.h"

namespace tinyvit {

namespace {
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
// Leaked on purpose: the classes live as long as the interpreter.
std::map<std::string, PyObject*>& registry() {
  static auto* m = new std::map<std::string, PyObject*>{
      {error_kind::kValue, PyExc_ValueError},
      {error_kind::kType, PyExc_TypeError},
      {error_kind::kNotFound, PyExc_FileNotFoundError},
      {error_kind::kPermission, PyExc_PermissionError},
      {error_kind::kIsDirectory, PyExc_IsADirectoryError},
      {error_kind::kIo, PyExc_OSError},
      {error_kind::kMemory, PyExc_MemoryError},
  };
  return *m;
}
}  // namespace

void register_error_kind(const std::string& kind, py::handle cls) {
  if (!PyType_Check(cls.ptr()) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls.ptr()),
                                                    reinterpret_cast<PyTypeObject*>(PyExc_Exception)))
    throw py::type_error("error kind '" + kind + "' must map to an Exception subclass");
  std::lock_guard<std::mutex> lock(registry_mutex());
  Py_INCREF(cls.ptr());
  registry()[kind] = cls.ptr();  // a replaced class is leaked rather than freed under users
}

void set_error(const Error& e, const std::string& prefix) {
  PyObject* cls = nullptr;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(e.kind);
    if (it != registry().end()) cls = it->second;
  }
  const std::string msg = prefix + e.message;
  if (cls == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, ("[unregistered error kind '" + e.kind + "'] " + msg).c_str());
  } else {
    PyErr_SetString(cls, msg.c_str());
  }
}

void raise_error(const Error& e, const std::string& prefix) {
  set_error(e, prefix);
  throw py::error_already_set();
}

void init_errors(py::module_& m) {
  m.def(
      "_register_error_kinds",
      [](py::dict classes) {
        for (auto item : classes) register_error_kind(py::cast<std::string>(item.first), item.second);
      },
      py::arg("classes"), "Map core error kinds (names) to Python exception classes.");
  m.def(
      "_raise_error",
      [](const std::string& kind, const std::string& message) { raise_error(Error(kind, message)); },
      py::arg("kind"), py::arg("message"), "Tests: raise the class registered for kind.");
}

}  // namespace tinyvit
