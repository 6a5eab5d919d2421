// Dataset readers on tiny files written here in the official formats, their error cases, the
// per-process cache, the tensor cache round trip, and the real Fashion-MNIST from Debian.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <functional>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/safetensors.h"
#include "tests/data/data_test_util.h"
#include "worker/data/dataset.h"

namespace vicreg::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WriteBytes;

// Runs fn, expects a UserError, returns its message.
std::string UserErrorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const UserError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected UserError, got: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected UserError, nothing thrown";
  return {};
}

DatasetSpec Spec(const std::string& name, const std::string& dir, const std::string& split = "train",
                 int64_t limit = 0) {
  DatasetSpec s;
  s.name = name;
  s.data_dir = dir;
  s.split = split;
  s.limit = limit;
  return s;
}

at::Tensor FetchAll(const Dataset& ds, at::Tensor* labels = nullptr) {
  std::vector<int64_t> idx(static_cast<size_t>(ds.size()));
  for (int64_t i = 0; i < ds.size(); ++i) idx[static_cast<size_t>(i)] = i;
  at::Tensor images, lab;
  ds.Fetch(idx, &images, &lab);
  if (labels) *labels = lab;
  return images;
}

// ---- CIFAR ----------------------------------------------------------------------------------

uint8_t CifarPixel(int rec, int c, int y, int x) { return static_cast<uint8_t>((rec * 7 + c * 3 + y * 5 + x) % 256); }

std::vector<uint8_t> CifarRecords(int first_rec, int n, const std::vector<std::vector<uint8_t>>& labels) {
  std::vector<uint8_t> out;
  for (int r = 0; r < n; ++r) {
    for (uint8_t l : labels[static_cast<size_t>(r)]) out.push_back(l);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) out.push_back(CifarPixel(first_rec + r, c, y, x));
  }
  return out;
}

void WriteCifar10(const std::string& dir, int per_batch = 2) {
  testing::MakeDir(dir);
  for (int b = 1; b <= 5; ++b) {
    std::vector<std::vector<uint8_t>> labels;
    for (int r = 0; r < per_batch; ++r) labels.push_back({static_cast<uint8_t>(((b - 1) * per_batch + r) % 10)});
    WriteBytes(dir + "/data_batch_" + std::to_string(b) + ".bin", CifarRecords((b - 1) * per_batch, per_batch, labels));
  }
  WriteBytes(dir + "/test_batch.bin", CifarRecords(100, 3, {{3}, {4}, {5}}));
}

TEST(Cifar10, ReadsRecordsLabelsAndPixelsAcrossBatchFiles) {
  TempDir tmp;
  WriteCifar10(tmp / "cifar-10-batches-bin");
  auto ds = OpenDataset(Spec("cifar10", tmp.path()));
  ASSERT_EQ(ds->size(), 10);
  EXPECT_EQ(ds->num_classes(), 10);
  EXPECT_EQ(ds->channels(), 3);
  EXPECT_EQ(ds->height(), 32);
  EXPECT_EQ(ds->class_names().at(0), "airplane");
  at::Tensor labels;
  at::Tensor images = FetchAll(*ds, &labels);
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{10, 3, 32, 32}));
  for (int r = 0; r < 10; ++r) {
    EXPECT_EQ(labels[r].item<int64_t>(), r % 10);
    for (int c = 0; c < 3; ++c)
      for (int y : {0, 13, 31})
        for (int x : {0, 7, 31}) ASSERT_EQ(images[r][c][y][x].item<int>(), CifarPixel(r, c, y, x)) << r << c << y << x;
  }
  auto test = OpenDataset(Spec("cifar10", tmp / "cifar-10-batches-bin", "test"));  // the folder itself works too
  ASSERT_EQ(test->size(), 3);
  EXPECT_EQ(test->label(2), 5);
  // Fetch in any order, with repeats.
  at::Tensor im, lb;
  test->Fetch({2, 0, 2}, &im, &lb);
  EXPECT_EQ(lb[0].item<int64_t>(), 5);
  EXPECT_EQ(im[1][2][4][6].item<int>(), CifarPixel(100, 2, 4, 6));
}

TEST(Cifar10, CacheReturnsOneInstancePerSpecAndLimitKeepsTheFirstImages) {
  TempDir tmp;
  WriteCifar10(tmp.path());
  auto a = OpenDataset(Spec("cifar10", tmp.path()));
  auto b = OpenDataset(Spec("cifar10", tmp.path() + "/"));  // same folder, other spelling
  EXPECT_EQ(a.get(), b.get());
  auto c = OpenDataset(Spec("cifar10", tmp.path(), "train", 4));
  EXPECT_NE(a.get(), c.get());
  EXPECT_EQ(c->size(), 4);
  EXPECT_EQ(c->label(3), 3);
}

TEST(Cifar10, ErrorsNameTheFile) {
  TempDir tmp;
  // missing: names the file and where it looked
  std::string msg = UserErrorOf([&] { OpenDataset(Spec("cifar10", tmp.path())); });
  EXPECT_THAT(msg, AllOf(HasSubstr("missing"), HasSubstr("data_batch_1.bin"), HasSubstr(tmp.path())));
  // truncated record
  WriteCifar10(tmp.path());
  auto rec = CifarRecords(0, 2, {{1}, {2}});
  rec.resize(rec.size() - 100);
  WriteBytes(tmp / "data_batch_3.bin", rec);
  msg = UserErrorOf([&] { OpenDataset(Spec("cifar10", tmp.path())); });
  EXPECT_THAT(msg,
              AllOf(HasSubstr(tmp / "data_batch_3.bin"), HasSubstr("3073"), HasSubstr(std::to_string(rec.size()))));
  // label out of range
  WriteCifar10(tmp.path());
  WriteBytes(tmp / "data_batch_2.bin", CifarRecords(0, 2, {{1}, {10}}));
  msg = UserErrorOf([&] { OpenDataset(Spec("cifar10", tmp.path(), "train", 1)); });
  EXPECT_THAT(msg, AllOf(HasSubstr(tmp / "data_batch_2.bin"), HasSubstr("label 10"), HasSubstr("0..9")));
  // zero images
  WriteBytes(tmp / "test_batch.bin", {});
  msg = UserErrorOf([&] { OpenDataset(Spec("cifar10", tmp.path(), "test")); });
  EXPECT_THAT(msg, AllOf(HasSubstr(tmp / "test_batch.bin"), HasSubstr("zero images")));
  // unknown split / dataset
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("cifar10", tmp.path(), "val")); }), HasSubstr("valid: train, test"));
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("cifar11", tmp.path())); }), HasSubstr("cifar10"));
}

TEST(Cifar100, UsesFineLabelsAndChecksBothLabelBytes) {
  TempDir tmp;
  const std::string dir = tmp / "cifar-100-binary";
  testing::MakeDir(dir);
  WriteBytes(dir + "/train.bin", CifarRecords(0, 3, {{19, 99}, {0, 42}, {5, 7}}));
  auto ds = OpenDataset(Spec("cifar100", tmp.path()));
  ASSERT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->num_classes(), 100);
  EXPECT_EQ(ds->label(0), 99);
  EXPECT_EQ(ds->label(1), 42);
  at::Tensor images = FetchAll(*ds);
  EXPECT_EQ(images[2][1][30][2].item<int>(), CifarPixel(2, 1, 30, 2));
  WriteBytes(dir + "/test.bin", CifarRecords(0, 2, {{1, 2}, {3, 100}}));
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("cifar100", tmp.path(), "test")); }),
              AllOf(HasSubstr(dir + "/test.bin"), HasSubstr("label 100"), HasSubstr("0..99")));
}

// ---- STL-10 ---------------------------------------------------------------------------------

// The value of pixel (row y, column x) of channel c of image i: asymmetric in x and y so that a
// missing or wrong transposition is caught.
uint8_t StlPixel(int i, int c, int y, int x) { return static_cast<uint8_t>((i * 11 + c * 50 + y * 3 + x * 7) % 256); }

std::vector<uint8_t> StlImages(int n) {
  std::vector<uint8_t> out;
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c)
      for (int x = 0; x < 96; ++x)  // column-major per channel: x outer, y inner
        for (int y = 0; y < 96; ++y) out.push_back(StlPixel(i, c, y, x));
  return out;
}

TEST(Stl10, TransposesColumnMajorPlanesAndMapsLabels) {
  TempDir tmp;
  const std::string dir = tmp / "stl10_binary";
  testing::MakeDir(dir);
  WriteBytes(dir + "/train_X.bin", StlImages(2));
  WriteBytes(dir + "/train_y.bin", {1, 10});
  WriteBytes(dir + "/unlabeled_X.bin", StlImages(3));
  auto train = OpenDataset(Spec("stl10", tmp.path()));
  ASSERT_EQ(train->size(), 2);
  EXPECT_EQ(train->label(0), 0);
  EXPECT_EQ(train->label(1), 9);
  at::Tensor images = FetchAll(*train);
  for (int i = 0; i < 2; ++i)
    for (int c = 0; c < 3; ++c)
      for (int y : {0, 1, 50, 95})
        for (int x : {0, 2, 77, 95})
          ASSERT_EQ(images[i][c][y][x].item<int>(), StlPixel(i, c, y, x)) << i << c << y << x;
  auto both = OpenDataset(Spec("stl10", tmp.path(), "train+unlabeled"));
  ASSERT_EQ(both->size(), 5);
  EXPECT_EQ(both->num_classes(), 10);
  EXPECT_EQ(both->label(1), 9);
  EXPECT_EQ(both->label(2), -1);
  at::Tensor im, lb;
  both->Fetch({4}, &im, &lb);
  EXPECT_EQ(im[0][1][5][9].item<int>(), StlPixel(2, 1, 5, 9));  // third unlabeled image
  auto unl = OpenDataset(Spec("stl10", tmp.path(), "unlabeled"));
  EXPECT_EQ(unl->num_classes(), 0);
  EXPECT_EQ(unl->label(0), -1);
}

TEST(Stl10, ErrorsNameTheFile) {
  TempDir tmp;
  WriteBytes(tmp / "train_X.bin", StlImages(2));
  WriteBytes(tmp / "train_y.bin", {1, 0});
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("stl10", tmp.path())); }),
              AllOf(HasSubstr(tmp / "train_y.bin"), HasSubstr("label 0"), HasSubstr("1..10")));
  WriteBytes(tmp / "train_y.bin", {1, 2, 3});
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("stl10", tmp.path(), "train", 1)); }),
              AllOf(HasSubstr("inconsistent image/label counts"), HasSubstr(tmp / "train_y.bin")));
  auto img = StlImages(1);
  img.pop_back();
  WriteBytes(tmp / "test_X.bin", img);
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("stl10", tmp.path(), "test")); }),
              AllOf(HasSubstr(tmp / "test_X.bin"), HasSubstr("27648")));
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("stl10", tmp.path(), "unlabeled")); }),
              AllOf(HasSubstr("missing"), HasSubstr("unlabeled_X.bin")));
}

// ---- IDX ------------------------------------------------------------------------------------

std::vector<uint8_t> IdxImages(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t pixels) {
  std::vector<uint8_t> out;
  testing::AppendBigEndian32(&out, magic);
  testing::AppendBigEndian32(&out, n);
  testing::AppendBigEndian32(&out, rows);
  testing::AppendBigEndian32(&out, cols);
  for (size_t i = 0; i < pixels; ++i) out.push_back(static_cast<uint8_t>(i * 13 % 256));
  return out;
}

std::vector<uint8_t> IdxLabels(uint32_t magic, const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> out;
  testing::AppendBigEndian32(&out, magic);
  testing::AppendBigEndian32(&out, static_cast<uint32_t>(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

void WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

TEST(Idx, ReadsPlainAndGzippedFilesAndReplicatesGrayscale) {
  TempDir tmp;
  WriteBytes(tmp / "train-images-idx3-ubyte", IdxImages(2051, 3, 5, 4, 60));
  WriteBytes(tmp / "train-labels-idx1-ubyte", IdxLabels(2049, {7, 0, 9}));
  WriteGzip(tmp / "t10k-images-idx3-ubyte.gz", IdxImages(2051, 2, 5, 4, 40));
  WriteGzip(tmp / "t10k-labels-idx1-ubyte.gz", IdxLabels(2049, {1, 2}));
  auto train = OpenDataset(Spec("mnist", tmp.path()));
  ASSERT_EQ(train->size(), 3);
  EXPECT_EQ(train->channels(), 1);
  EXPECT_EQ(train->height(), 5);
  EXPECT_EQ(train->width(), 4);
  EXPECT_EQ(train->label(0), 7);
  at::Tensor images = FetchAll(*train);
  ASSERT_EQ(images.sizes(), (std::vector<int64_t>{3, 3, 5, 4}));
  for (int i = 0; i < 3; ++i)
    for (int y = 0; y < 5; ++y)
      for (int x = 0; x < 4; ++x) {
        const int v = (i * 20 + y * 4 + x) * 13 % 256;
        for (int c = 0; c < 3; ++c) ASSERT_EQ(images[i][c][y][x].item<int>(), v);
      }
  auto test = OpenDataset(Spec("fashion_mnist", tmp.path(), "test"));
  ASSERT_EQ(test->size(), 2);
  EXPECT_EQ(test->label(1), 2);
  EXPECT_EQ(FetchAll(*test)[1][0][4][3].item<int>(), (39 * 13) % 256);
  EXPECT_EQ(test->class_names().at(9), "Ankle boot");
}

TEST(Idx, ErrorsNameTheFileAndTheExpectedMagicOrSize) {
  TempDir tmp;
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("fashion_mnist", tmp.path())); }),
              AllOf(HasSubstr("missing"), HasSubstr(tmp / "train-images-idx3-ubyte"),
                    HasSubstr("train-images-idx3-ubyte.gz"), HasSubstr("FashionMNIST/raw")));
  WriteBytes(tmp / "train-labels-idx1-ubyte", IdxLabels(2049, {1, 2}));
  WriteBytes(tmp / "train-images-idx3-ubyte", IdxImages(2049, 2, 2, 2, 8));  // labels magic on the images file
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("mnist", tmp.path())); }),
              AllOf(HasSubstr(tmp / "train-images-idx3-ubyte"), HasSubstr("expected 2051"), HasSubstr("found 2049")));
  WriteBytes(tmp / "train-images-idx3-ubyte", IdxImages(2051, 2, 2, 2, 7));  // one byte short
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("mnist", tmp.path(), "train", 1)); }),
              AllOf(HasSubstr(tmp / "train-images-idx3-ubyte"), HasSubstr("truncated"), HasSubstr("expected 24 bytes"),
                    HasSubstr("found 23")));
  WriteBytes(tmp / "train-images-idx3-ubyte", IdxImages(2051, 0, 2, 2, 0));
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("mnist", tmp.path(), "train", 2)); }),
              AllOf(HasSubstr(tmp / "train-images-idx3-ubyte"), HasSubstr("zero images")));
  WriteBytes(tmp / "train-images-idx3-ubyte", IdxImages(2051, 3, 2, 2, 12));
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("mnist", tmp.path(), "train", 3)); }),
              AllOf(HasSubstr("inconsistent image/label counts"), HasSubstr(tmp / "train-labels-idx1-ubyte")));
  WriteBytes(tmp / "train-labels-idx1-ubyte", IdxLabels(2049, {1, 10, 2}));
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("mnist", tmp.path(), "train", 4)); }),
              AllOf(HasSubstr(tmp / "train-labels-idx1-ubyte"), HasSubstr("label 10"), HasSubstr("0..9")));
  // A truncated gzip stream.
  auto gz = IdxImages(2051, 50, 10, 10, 5000);
  WriteGzip(tmp / "t10k-images-idx3-ubyte.gz", gz);
  WriteBytes(tmp / "t10k-labels-idx1-ubyte", IdxLabels(2049, std::vector<uint8_t>(50, 1)));
  {
    std::ifstream in(tmp / "t10k-images-idx3-ubyte.gz", std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes.resize(bytes.size() / 2);
    WriteBytes(tmp / "t10k-images-idx3-ubyte.gz", bytes);
  }
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("mnist", tmp.path(), "test")); }),
              HasSubstr(tmp / "t10k-images-idx3-ubyte.gz"));
}

TEST(FashionMnist, DebianPackageLoads60000Plus10000WithTheRightLabels) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::ifstream(dir + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << dir << " is absent: install Debian's dataset-fashion-mnist (deploy/install-deps.sh does)";
  auto train = OpenDataset(Spec("fashion_mnist", dir));
  auto test = OpenDataset(Spec("fashion_mnist", dir, "test"));
  ASSERT_EQ(train->size(), 60000);
  ASSERT_EQ(test->size(), 10000);
  EXPECT_EQ(train->height(), 28);
  // First labels of the official files (utils/mnist_reader.py): train 9 0 0 3 0, test 9 2 1 1 6.
  const std::vector<int64_t> train_first = {9, 0, 0, 3, 0}, test_first = {9, 2, 1, 1, 6};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(train->label(static_cast<int64_t>(i)), train_first[i]) << i;
    EXPECT_EQ(test->label(static_cast<int64_t>(i)), test_first[i]) << i;
  }
  std::vector<int64_t> counts(10, 0);
  for (int64_t i = 0; i < 60000; ++i) ++counts[static_cast<size_t>(train->label(i))];
  for (int64_t c : counts) EXPECT_EQ(c, 6000);
  // Mean pixel of Fashion-MNIST train: 0.2860 (measured with torch in shared/notes/toolchain.md).
  EXPECT_NEAR(train->mean()[0], 0.2860, 0.003);
  EXPECT_NEAR(train->std()[0], 0.3530, 0.005);
}

// ---- image folder ---------------------------------------------------------------------------

void WritePng(const std::string& path, int w, int h, int seed) {
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 31 + static_cast<size_t>(seed) * 17) % 256);
  ASSERT_TRUE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3));
}

TEST(ImageFolder, ClassesAreSortedFolderNamesAndPixelsAreDecoded) {
  TempDir tmp;
  for (const char* c : {"cat", "ant"}) testing::MakeDir(tmp / (std::string("train/") + c));
  WritePng(tmp / "train/cat/b.png", 6, 4, 3);
  WritePng(tmp / "train/cat/a.PNG", 6, 4, 2);
  WritePng(tmp / "train/ant/z.png", 6, 4, 1);
  WriteBytes(tmp / "train/ant/notes.txt", {'x'});  // not an image: ignored
  auto ds = OpenDataset(Spec("image_folder", tmp.path()));
  ASSERT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->num_classes(), 2);
  EXPECT_EQ(ds->class_names(), (std::vector<std::string>{"ant", "cat"}));
  EXPECT_EQ(ds->label(0), 0);
  EXPECT_EQ(ds->label(1), 1);
  EXPECT_EQ(ds->height(), 4);
  EXPECT_EQ(ds->width(), 6);
  at::Tensor images = FetchAll(*ds);
  // image 1 = cat/a.PNG (seed 2): HWC byte i = (i*31 + 34) % 256
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(images[1][c][y][x].item<int>(), static_cast<int>(((y * 6 + x) * 3 + c) * 31 + 34) % 256);
  // resize: shorter side to 3, center crop 3x3
  DatasetSpec rs = Spec("image_folder", tmp.path());
  rs.resize = 3;
  auto small = OpenDataset(rs);
  EXPECT_EQ(small->height(), 3);
  EXPECT_EQ(FetchAll(*small).sizes(), (std::vector<int64_t>{3, 3, 3, 3}));
}

TEST(ImageFolder, ErrorsNameTheFile) {
  TempDir tmp;
  testing::MakeDir(tmp / "a");
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("image_folder", tmp.path())); }), HasSubstr("zero images"));
  WritePng(tmp / "a/1.png", 6, 4, 1);
  WritePng(tmp / "a/2.png", 5, 4, 1);
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("image_folder", tmp.path())); }),
              AllOf(HasSubstr(tmp / "a/2.png"), HasSubstr("5x4"), HasSubstr("6x4")));
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("image_folder", tmp.path(), "val")); }),
              AllOf(HasSubstr("missing folder"), HasSubstr(tmp / "val")));
  // A PNG whose header is fine but whose data is cut: fails when fetched, naming the file.
  WritePng(tmp / "a/2.png", 64, 64, 1);
  WritePng(tmp / "a/1.png", 64, 64, 2);
  std::ifstream in(tmp / "a/2.png", std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.resize(60);
  WriteBytes(tmp / "a/2.png", bytes);
  auto ds = OpenDataset(Spec("image_folder", tmp.path(), "train", 2));
  at::Tensor im, lb;
  ds->Fetch({0}, &im, &lb);
  EXPECT_THAT(UserErrorOf([&] { ds->Fetch({1}, &im, &lb); }), AllOf(HasSubstr(tmp / "a/2.png"), HasSubstr("decode")));
}

// ---- tensor cache + safetensors ---------------------------------------------------------------

TEST(TensorCache, ConvertRoundTripKeepsImagesLabelsStatsAndNames) {
  TempDir tmp;
  WriteCifar10(tmp.path(), 3);
  auto src = OpenDataset(Spec("cifar10", tmp.path()));
  EXPECT_EQ(ConvertToTensorCache(*src, tmp / "train.safetensors"), 15);
  auto cache = OpenDataset(Spec("tensor_cache", tmp.path()));  // <dir>/<split>.safetensors
  ASSERT_EQ(cache->size(), 15);
  EXPECT_EQ(cache->num_classes(), 10);
  EXPECT_EQ(cache->class_names(), src->class_names());
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(cache->mean()[c], src->mean()[c], 1e-12);
    EXPECT_NEAR(cache->std()[c], src->std()[c], 1e-12);
  }
  at::Tensor la, lb;
  EXPECT_TRUE(at::equal(FetchAll(*cache, &la), FetchAll(*src, &lb)));
  EXPECT_TRUE(at::equal(la, lb));
  // A grayscale dataset is stored with one channel and replicated on Fetch.
  WriteBytes(tmp / "train-images-idx3-ubyte", IdxImages(2051, 3, 5, 4, 60));
  WriteBytes(tmp / "train-labels-idx1-ubyte", IdxLabels(2049, {7, 0, 9}));
  auto gray = OpenDataset(Spec("mnist", tmp.path()));
  ConvertToTensorCache(*gray, tmp / "gray.safetensors");
  auto gcache = OpenDataset(Spec("tensor_cache", tmp / "gray.safetensors"));
  EXPECT_EQ(gcache->channels(), 1);
  EXPECT_TRUE(at::equal(FetchAll(*gcache), FetchAll(*gray)));
}

TEST(TensorCache, ReadsNhwcAndReportsBadFiles) {
  TempDir tmp;
  namespace st = vicreg::safetensors;
  // NHWC, no metadata: inferred from the last dim; labels I32; stats computed.
  std::vector<uint8_t> hwc(2 * 2 * 3 * 3);
  for (size_t i = 0; i < hwc.size(); ++i) hwc[i] = static_cast<uint8_t>(i);
  std::vector<int32_t> labels = {4, 1};
  auto view = [](const auto& v) {
    return std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(v[0]));
  };
  st::WriteFile(tmp / "nhwc.safetensors",
                {{"images", st::DType::kU8, {2, 2, 3, 3}, view(hwc)}, {"labels", st::DType::kI32, {2}, view(labels)}});
  auto ds = OpenDataset(Spec("tensor_cache", tmp / "nhwc.safetensors"));
  ASSERT_EQ(ds->size(), 2);
  EXPECT_EQ(ds->height(), 2);
  EXPECT_EQ(ds->width(), 3);
  EXPECT_EQ(ds->num_classes(), 5);
  at::Tensor im = FetchAll(*ds);
  for (int n = 0; n < 2; ++n)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 3; ++x)
        for (int c = 0; c < 3; ++c) ASSERT_EQ(im[n][c][y][x].item<int>(), ((n * 2 + y) * 3 + x) * 3 + c);

  std::vector<int64_t> bad = {0, 7};
  st::WriteFile(tmp / "bad_label.safetensors",
                {{"images", st::DType::kU8, {2, 2, 3, 3}, view(hwc)}, {"labels", st::DType::kI64, {2}, view(bad)}},
                {{"num_classes", "5"}});
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("tensor_cache", tmp / "bad_label.safetensors")); }),
              AllOf(HasSubstr(tmp / "bad_label.safetensors"), HasSubstr("label 7")));
  st::WriteFile(tmp / "empty.safetensors", {{"images", st::DType::kU8, {0, 3, 4, 4}, std::string_view()}});
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("tensor_cache", tmp / "empty.safetensors")); }),
              AllOf(HasSubstr(tmp / "empty.safetensors"), HasSubstr("zero images")));
  std::vector<float> f(4);
  st::WriteFile(tmp / "float.safetensors", {{"images", st::DType::kF32, {1, 1, 2, 2}, view(f)}});
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("tensor_cache", tmp / "float.safetensors")); }),
              AllOf(HasSubstr(tmp / "float.safetensors"), HasSubstr("U8"), HasSubstr("F32")));
  WriteBytes(tmp / "garbage.safetensors", {1, 2, 3});
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("tensor_cache", tmp / "garbage.safetensors")); }),
              AllOf(HasSubstr(tmp / "garbage.safetensors"), HasSubstr("truncated")));
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("tensor_cache", tmp.path(), "test")); }),
              AllOf(HasSubstr("missing"), HasSubstr(tmp / "test.safetensors")));
}

TEST(Safetensors, HeaderRoundTripAndValidation) {
  TempDir tmp;
  namespace st = vicreg::safetensors;
  std::vector<float> a = {1.5f, -2.f, 3.f};
  std::vector<int64_t> b = {7};
  st::WriteFile(tmp / "x.safetensors",
                {{"b", st::DType::kI64, {1}, {reinterpret_cast<const char*>(b.data()), 8}},
                 {"a.weight", st::DType::kF32, {3}, {reinterpret_cast<const char*>(a.data()), 12}}},
                {{"k", "v"}});
  std::ifstream in(tmp / "x.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const st::Header h = st::ParseHeader(bytes, "x");
  EXPECT_EQ(h.data_start % 8, 0u);
  EXPECT_EQ(h.metadata.at("k"), "v");
  const st::TensorInfo* t = h.Find("a.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{3}));
  const auto data = st::TensorBytes(bytes, h, *t);
  ASSERT_EQ(data.size(), 12u);
  EXPECT_EQ(reinterpret_cast<const float*>(data.data())[1], -2.f);
  // Corruptions: truncated buffer, wrong byte count.
  EXPECT_THAT(UserErrorOf([&] { st::ParseHeader(bytes.substr(0, bytes.size() - 1), "cut.safetensors"); }),
              HasSubstr("cut.safetensors"));
  std::string lying = bytes;
  const auto pos = lying.find("[0,12]") != std::string::npos ? lying.find("[0,12]") : lying.find("[8,20]");
  ASSERT_NE(pos, std::string::npos) << lying.substr(8, 200);
  lying.replace(pos, 6, lying.substr(pos, 6) == "[0,12]" ? "[0,11]" : "[8,19]");
  EXPECT_THAT(UserErrorOf([&] { st::ParseHeader(lying, "lying.safetensors"); }),
              AllOf(HasSubstr("lying.safetensors"), HasSubstr("needs 12 bytes")));
}

// A tensor_cache data_dir may name any file the worker can read (a key, a password file): the
// error (which reaches the job's last_error) names the file but never quotes its bytes.
TEST(TensorCache, ErrorsOnAnyFileNeverQuoteItsBytes) {
  TempDir tmp;
  const std::string secret = "SECRET-KEY-abcdefgh-0123456789\nroot:x:0:0:root:/root:/bin/bash\n";
  WriteBytes(tmp / "private.key", std::vector<uint8_t>(secret.begin(), secret.end()));
  const std::string header = "{\"SECRET\": tru";  // a length that fits, then broken JSON
  std::vector<uint8_t> fake(8, 0);
  fake[0] = static_cast<uint8_t>(header.size());
  fake.insert(fake.end(), header.begin(), header.end());
  WriteBytes(tmp / "fake.safetensors", fake);
  for (const char* name : {"private.key", "fake.safetensors"}) {
    const std::string msg = UserErrorOf([&] { OpenDataset(Spec("tensor_cache", tmp / name)); });
    EXPECT_THAT(msg, HasSubstr(name));
    EXPECT_EQ(msg.find("SECRET"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("root"), std::string::npos) << msg;
    uint64_t first8 = 0;
    for (int i = 7; i >= 0; --i) first8 = (first8 << 8) | static_cast<uint8_t>(secret[i]);
    EXPECT_EQ(msg.find(std::to_string(first8)), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace vicreg::data
