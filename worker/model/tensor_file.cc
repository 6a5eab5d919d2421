#include "worker/model/tensor_file.h"

#include <ATen/ATen.h>

#include <cstring>

#include "common/errors.h"
#include "common/fs.h"
#include "common/safetensors.h"

namespace vicreg::model {
namespace {

at::ScalarType ToScalarType(safetensors::DType d, const std::string& name, const std::string& source) {
  using D = safetensors::DType;
  switch (d) {
    case D::kBool: return at::kBool;
    case D::kU8: return at::kByte;
    case D::kI8: return at::kChar;
    case D::kI16: return at::kShort;
    case D::kI32: return at::kInt;
    case D::kI64: return at::kLong;
    case D::kF16: return at::kHalf;
    case D::kBF16: return at::kBFloat16;
    case D::kF32: return at::kFloat;
    case D::kF64: return at::kDouble;
    default:
      throw UserError(source + ": tensor '" + name + "' has dtype " + safetensors::DTypeName(d) +
                      ", which has no torch equivalent (supported: BOOL, U8, I8, I16, I32, I64, F16, BF16, F32, F64)");
  }
}

safetensors::DType FromScalarType(at::ScalarType t, const std::string& name, const std::string& path) {
  using D = safetensors::DType;
  switch (t) {
    case at::kBool: return D::kBool;
    case at::kByte: return D::kU8;
    case at::kChar: return D::kI8;
    case at::kShort: return D::kI16;
    case at::kInt: return D::kI32;
    case at::kLong: return D::kI64;
    case at::kHalf: return D::kF16;
    case at::kBFloat16: return D::kBF16;
    case at::kFloat: return D::kF32;
    case at::kDouble: return D::kF64;
    default:
      throw InternalError(path + ": cannot write tensor '" + name + "' of dtype " + std::string(c10::toString(t)));
  }
}

std::string ParentDir(const std::string& path) {
  const auto pos = path.find_last_of('/');
  return pos == std::string::npos ? std::string() : path.substr(0, pos);
}

}  // namespace

TensorFile ReadTensorFile(const std::string& path) {
  const std::string bytes = fs::ReadFile(path);
  const auto header = safetensors::ParseHeader(bytes, path);
  TensorFile out;
  out.metadata = header.metadata;
  for (const auto& t : header.tensors) {
    const auto st = ToScalarType(t.dtype, t.name, path);
    auto tensor = at::empty(t.shape, at::TensorOptions().dtype(st));
    const auto src = safetensors::TensorBytes(bytes, header, t);
    VICREG_CHECK(static_cast<uint64_t>(tensor.nbytes()) == src.size(), "size mismatch for " + t.name);
    if (!src.empty()) std::memcpy(tensor.data_ptr(), src.data(), src.size());
    out.tensors.emplace_back(t.name, std::move(tensor));
  }
  return out;
}

void WriteTensorFile(const std::string& path, const NamedTensors& tensors,
                     const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;  // contiguous CPU copies must outlive WriteFile
  std::vector<safetensors::TensorData> data;
  keep.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    keep.push_back(t.detach().to(at::kCPU).contiguous());
    const auto& c = keep.back();
    data.push_back({name, FromScalarType(c.scalar_type(), name, path), c.sizes().vec(),
                    std::string_view(static_cast<const char*>(c.data_ptr()), c.nbytes())});
  }
  const auto dir = ParentDir(path);
  if (!dir.empty()) fs::MakeDirs(dir);
  safetensors::WriteFile(path, data, metadata);
}

}  // namespace vicreg::model
