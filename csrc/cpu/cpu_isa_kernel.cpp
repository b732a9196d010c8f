#include "pyface/cpu_isa.h"

PYFACE_CPU_NAMESPACE_BEGIN

const char* compiled_isa_path() { return PYFACE_CPU_ISA_NAME; }

PYFACE_CPU_NAMESPACE_END
