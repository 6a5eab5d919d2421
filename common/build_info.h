// Version and git revision of this build. Defined in a generated build_info.cc so that a new
// commit recompiles one file instead of every file that links vicreg_common.
#pragma once

namespace vicreg {
const char* BuildVersion();   // "0.1.0"
const char* BuildRevision();  // short git hash at configure time, or "unknown"
}  // namespace vicreg
