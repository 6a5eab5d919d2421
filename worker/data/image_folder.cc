// Image folder: <root>/<class>/<image>.{jpg,jpeg,png} (case-insensitive extensions), classes
// = the sorted sub-folder names, images sorted by file name within a class. Decoded with
// stb_image (Debian's libstb) when fetched, so opening a folder only reads the file headers.
// With DatasetSpec::resize == 0 every image must have the size of the first one; with N > 0 each
// image's shorter side is resized to N (antialiased bilinear) and the center N x N is kept.
#include <ATen/ATen.h>
#include <dirent.h>
#include <stb/stb_image.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/errors.h"
#include "worker/data/mapped_file.h"
#include "worker/data/readers.h"
#include "worker/data/stored_dataset.h"

namespace vicreg::data {
namespace {

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw UserError("image_folder: cannot list folder " + dir + ": " + std::strerror(errno));
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;  // ., .. and hidden files
    names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool IsImageName(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* ext : {".jpg", ".jpeg", ".png"}) {
    const size_t n = std::strlen(ext);
    if (lower.size() > n && lower.compare(lower.size() - n, n, ext) == 0) return true;
  }
  return false;
}

std::string StbReason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown reason";
}

class ImageFolderDataset final : public StoredDataset {
 public:
  ImageFolderDataset(Geometry geo, std::vector<std::string> files, std::vector<int64_t> labels, int resize,
                     const std::string& root)
      : StoredDataset(std::move(geo), static_cast<int64_t>(files.size()), std::move(labels), "image folder " + root),
        files_(std::move(files)),
        resize_(resize) {}
  using StoredDataset::ApplyLimit;
  using StoredDataset::SetClassNames;

 protected:
  void ReadImage(int64_t index, uint8_t* dst) const override {
    const std::string& path = files_[static_cast<size_t>(index)];
    int w = 0, h = 0, comp = 0;
    std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load(path.c_str(), &w, &h, &comp, 3), stbi_image_free);
    if (!px) throw UserError("image_folder: cannot decode " + path + ": " + StbReason());
    const int oh = height(), ow = width();
    at::Tensor hwc = at::from_blob(px.get(), {h, w, 3}, at::kByte);
    at::Tensor chw;
    if (resize_ == 0) {
      if (h != oh || w != ow)
        throw UserError("image_folder: " + path + " is " + std::to_string(w) + "x" + std::to_string(h) + ", expected " +
                        std::to_string(ow) + "x" + std::to_string(oh) +
                        " like the other images (or set a resize size for image folders)");
      chw = hwc.permute({2, 0, 1});
    } else {
      // Shorter side -> resize_, keeping the aspect ratio (torchvision Resize(int) rounding), then center crop.
      const double scale = static_cast<double>(resize_) / std::min(h, w);
      const int64_t nh = h <= w ? resize_ : static_cast<int64_t>(std::floor(h * scale + 0.5));
      const int64_t nw = w <= h ? resize_ : static_cast<int64_t>(std::floor(w * scale + 0.5));
      at::Tensor f = hwc.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);  // [1, 3, h, w]
      at::Tensor r = (nh == h && nw == w) ? f : at::_upsample_bilinear2d_aa(f, {nh, nw}, /*align_corners=*/false);
      const int64_t top = (nh - resize_) / 2, left = (nw - resize_) / 2;
      chw = r[0].narrow(1, top, resize_).narrow(2, left, resize_).round().clamp(0, 255).to(at::kByte);
    }
    at::from_blob(dst, {3, oh, ow}, at::kByte).copy_(chw);
  }

 private:
  std::vector<std::string> files_;
  int resize_;
};

}  // namespace

std::shared_ptr<const Dataset> OpenImageFolder(const DatasetSpec& spec) {
  if (spec.resize < 0)
    throw UserError("image_folder: resize must be >= 0 (0 = keep the common size), got " + std::to_string(spec.resize));
  std::string root = JoinPath(spec.data_dir, spec.split);
  if (!IsDirectory(root)) {
    if (spec.split != "train" || !IsDirectory(spec.data_dir))
      throw UserError("image_folder: missing folder " + root +
                      (spec.split == "train" ? " (and " + spec.data_dir + " is not a folder)" : "") +
                      "; expected <data_dir>/<split>/<class>/<image>.{jpg,jpeg,png}");
    root = spec.data_dir;
  }
  std::vector<std::string> classes;
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  for (const auto& name : ListDir(root)) {
    const std::string cdir = JoinPath(root, name);
    if (!IsDirectory(cdir)) continue;
    const int64_t label = static_cast<int64_t>(classes.size());
    classes.push_back(name);
    for (const auto& f : ListDir(cdir)) {
      if (!IsImageName(f)) continue;
      files.push_back(JoinPath(cdir, f));
      labels.push_back(label);
    }
  }
  if (files.empty())
    throw UserError("image_folder: " + root +
                    " contains zero images (expected <class>/<image>.{jpg,jpeg,png} under it; found " +
                    std::to_string(classes.size()) + " class folder(s))");
  int h0 = 0, w0 = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    int w = 0, h = 0, comp = 0;
    if (!stbi_info(files[i].c_str(), &w, &h, &comp))
      throw UserError("image_folder: " + files[i] + " is not a readable JPEG/PNG image: " + StbReason());
    if (i == 0) {
      h0 = h;
      w0 = w;
    } else if (spec.resize == 0 && (h != h0 || w != w0)) {
      throw UserError("image_folder: " + files[i] + " is " + std::to_string(w) + "x" + std::to_string(h) + " but " +
                      files[0] + " is " + std::to_string(w0) + "x" + std::to_string(h0) +
                      "; all images must share one size unless a resize size is set (DatasetSpec::resize)");
    }
  }
  const int side_h = spec.resize > 0 ? spec.resize : h0, side_w = spec.resize > 0 ? spec.resize : w0;
  StoredDataset::Geometry geo{"image_folder:" + spec.split, 3, side_h, side_w, static_cast<int>(classes.size())};
  auto ds = std::make_shared<ImageFolderDataset>(geo, std::move(files), std::move(labels), spec.resize, root);
  ds->SetClassNames(std::move(classes));
  ds->ApplyLimit(spec.limit);
  return ds;
}

}  // namespace vicreg::data
