// What a vicreg binary was built from: version, git revision, compiler, and whether this build has
// CUDA, NCCL, MPI and Gloo (the CMake options VICREG_WITH_*). Every binary's --version prints
// VersionText(). Defined in a generated build_info.cc (common/build_info.cc.in via configure_file,
// the revision from git at configure time or -DVICREG_GIT_REVISION) so that a new commit recompiles
// one file. common/ has no LibTorch: binaries that link it pass its version and what the machine
// offers (CUDA devices) as extra fields (worker/comm/torch_build_info.h).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace vicreg {

const char* BuildVersion();   // "0.1.0" (CMake project version)
const char* BuildRevision();  // short git hash of the source tree, or "unknown"

// One "key: value" line of --version.
using BuildField = std::pair<std::string, std::string>;

// version, revision, build (type, compiler, C++ standard), libtorch ("not linked"), cuda, nccl, mpi,
// gloo ("yes" / "no (built with VICREG_WITH_X=OFF)").
std::vector<BuildField> BuildFields();

// "<program> <version> (<revision>)" and one "key: value" line per field of BuildFields() (no final
// newline); a field of `extra` replaces the one with the same key, others are appended. For CLI11:
// app.set_version_flag("--version", [] { return VersionText("prog"); }, kVersionFlagHelp).
std::string VersionText(const std::string& program, const std::vector<BuildField>& extra = {});

inline constexpr const char* kVersionFlagHelp =
    "Print the version, git revision, LibTorch version and CUDA/NCCL/MPI/Gloo availability, then exit";

// For mains that dispatch on argv by hand: when argv[1] is --version, prints VersionText to stdout
// and returns true (the caller exits 0).
bool PrintVersionIfAsked(int argc, char** argv, const std::string& program, const std::vector<BuildField>& extra = {});

}  // namespace vicreg
