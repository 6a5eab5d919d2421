// Dataset readers (worker/data), one fuzzer binary per reader: the build compiles this file once
// per reader with VICREG_FUZZ_READER set to its name (tests/fuzz/CMakeLists.txt). The input is
// turned into the files the reader looks for in a scratch data_dir; then the reader's factory is
// called directly (not OpenDataset, whose per-process cache would keep the first input) and the
// dataset is used like the loader does: size, labels, class names, a Fetch of the first and last
// images, mean/std. Promise checked: a bad file is a UserError (which must not quote the file's
// bytes), never another exception or a crash.
//
// Adding a reader: add a case to OpenFromInput below and its name to
// VICREG_FUZZ_READERS in tests/fuzz/CMakeLists.txt, with a seed folder tests/fuzz/corpus/<name>/.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/errors.h"
#include "tests/fuzz/fuzz_util.h"
#include "worker/data/dataset.h"
#include "worker/data/readers.h"

#ifndef VICREG_FUZZ_READER
#error "compile with -DVICREG_FUZZ_READER=<reader name>"
#endif
#define VICREG_STR2(x) #x
#define VICREG_STR(x) VICREG_STR2(x)

namespace fz = vicreg::fuzz;
namespace data = vicreg::data;

namespace {

const std::string kReader = VICREG_STR(VICREG_FUZZ_READER);

// Writes the input as the reader's files under a fresh data_dir and opens it.
std::shared_ptr<const data::Dataset> OpenFromInput(fz::Bytes& in) {
  const std::string dir = fz::FreshDir("data");
  data::DatasetSpec spec;
  spec.data_dir = dir;
  spec.split = "test";
  const uint8_t mode = in.U8();
  spec.limit = (mode & 0x80) ? (mode & 7) : 0;
  if (kReader == "cifar") {
    spec.name = (mode & 1) ? "cifar100" : "cifar10";
    fz::WriteFile(dir + ((mode & 1) ? "/test.bin" : "/test_batch.bin"), in.Rest());
    return (mode & 1) ? data::OpenCifar100(spec) : data::OpenCifar10(spec);
  }
  if (kReader == "stl10") {
    spec.name = "stl10";
    spec.split = (mode & 1) ? "unlabeled" : "test";
    std::string_view labels = in.Chunk();
    if (mode & 1) {
      fz::WriteFile(dir + "/unlabeled_X.bin", in.Rest());
    } else {
      fz::WriteFile(dir + "/test_y.bin", labels);
      fz::WriteFile(dir + "/test_X.bin", in.Rest());
    }
    return data::OpenStl10(spec);
  }
  if (kReader == "idx") {
    spec.name = (mode & 1) ? "mnist" : "fashion_mnist";
    const char* gz = (mode & 2) ? ".gz" : "";  // the fuzzer supplies the gzip stream itself
    std::string_view labels = in.Chunk();
    fz::WriteFile(dir + "/t10k-labels-idx1-ubyte" + gz, labels);
    fz::WriteFile(dir + "/t10k-images-idx3-ubyte" + gz, in.Rest());
    return data::OpenIdx(spec);
  }
  if (kReader == "image_folder") {
    spec.name = "image_folder";
    spec.split = "train";
    spec.resize = (mode & 1) ? 8 : 0;
    fz::MakeDir(dir + "/train");
    int n = 0;
    while (!in.empty() && n < 4) {
      const uint8_t where = in.U8();
      const std::string cls = dir + "/train/class" + std::to_string(where & 1);
      fz::MakeDir(cls);
      fz::WriteFile(cls + "/img" + std::to_string(n++) + ((where & 2) ? ".png" : ".jpg"), in.Chunk());
    }
    return data::OpenImageFolder(spec);
  }
  if (kReader == "cifar_python") {  // torchvision's Python version: a pickle per file (+ the meta file)
    const bool c100 = mode & 1;
    spec.name = c100 ? "cifar100" : "cifar10";
    if (mode & 2) fz::WriteFile(dir + (c100 ? "/meta" : "/batches.meta"), in.Chunk());
    fz::WriteFile(dir + (c100 ? "/test" : "/test_batch"), in.Rest());
    return c100 ? data::OpenCifar100Python(spec, dir) : data::OpenCifar10Python(spec, dir);
  }
  if (kReader == "torch_cache") {  // a torch.save'd .pt (LibTorch's unpickler on a zip archive)
    spec.name = "tensor_cache";
    fz::WriteFile(dir + "/test.pt", in.Rest());
    return data::OpenTorchCache(spec, dir + "/test.pt");
  }
  if (kReader == "tensor_cache") {
    spec.name = "tensor_cache";
    fz::WriteFile(dir + "/test.safetensors", in.Rest());
    return data::OpenTensorCache(spec);
  }
  VICREG_FUZZ_FINDING("no reader named " + kReader);
}

void Use(const data::Dataset& ds) {
  const int64_t n = ds.size();
  if (n <= 0) VICREG_FUZZ_FINDING("an opened dataset has " + std::to_string(n) + " images");
  if (static_cast<int64_t>(ds.height()) * ds.width() > (1 << 16)) return;  // keep each run fast
  (void)ds.num_classes();
  (void)ds.class_names();
  std::vector<int64_t> idx = {0, n - 1};
  for (int64_t i : idx) (void)ds.label(i);
  at::Tensor images, labels;
  ds.Fetch(idx, &images, &labels);
  if (images.size(0) != 2 || images.size(1) != 3 || images.size(2) != ds.height() || images.size(3) != ds.width())
    VICREG_FUZZ_FINDING("Fetch returned images of the wrong shape");
  if (n <= 64) {
    (void)ds.mean();
    (void)ds.std();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  fz::Bytes in(bytes, size);
  try {
    auto ds = OpenFromInput(in);
    Use(*ds);
  } catch (const vicreg::UserError&) {
    return 0;
  } catch (const std::exception& e) {
    VICREG_FUZZ_FINDING("reader " + kReader + " threw a non-UserError: " + e.what());
  }
  return 0;
}
