// The fuzzers' main() when they are not linked with libFuzzer (gcc builds, or VICREG_LIBFUZZER=OFF):
// runs LLVMFuzzerTestOneInput once on every file named on the command line or found (one level
// deep) in a folder named there. ctest runs it on the checked-in corpus, so every input that once
// crashed stays a regression test under gcc too. libFuzzer flags (-runs=0, ...) are ignored.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace {

bool IsDir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (!a.empty() && a[0] == '-') continue;  // libFuzzer flags
    if (!IsDir(a)) {
      files.push_back(a);
      continue;
    }
    DIR* d = ::opendir(a.c_str());
    if (!d) {
      std::fprintf(stderr, "cannot open folder %s\n", a.c_str());
      return 2;
    }
    std::vector<std::string> in_dir;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.empty() || name[0] == '.') continue;
      std::string p = a + "/" + name;
      if (!IsDir(p)) in_dir.push_back(p);
    }
    ::closedir(d);
    std::sort(in_dir.begin(), in_dir.end());
    files.insert(files.end(), in_dir.begin(), in_dir.end());
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s FILE|FOLDER... (replays each input once)\n", argv[0]);
    return 2;
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", f.c_str());
      return 2;
    }
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fprintf(stderr, "replay %s (%zu bytes)\n", f.c_str(), bytes.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::fprintf(stderr, "replayed %zu inputs, no finding\n", files.size());
  return 0;
}
