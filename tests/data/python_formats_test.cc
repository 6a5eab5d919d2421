// Readers of the files Python users have on disk: CIFAR-10/100 in torchvision's Python version
// (pickles, read by the data-only reader worker/data/pickle_data.h) and torch.save'd tensor caches
// (.pt, LibTorch's unpickler). The pickles are written here by /usr/bin/python3's pickle, the .pt files
// were written by torch.save and are checked in (tests/data/write_python_formats.py writes both): the
// official layouts in every pickle protocol, plus malicious, truncated and wrongly shaped ones, which
// must be refused naming the file, with nothing executed (the malicious ones would `touch` a marker
// file; Python's pickle.load does).
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/errors.h"
#include "tests/data/data_test_util.h"
#include "worker/data/dataset.h"
#include "worker/data/pickle_data.h"

namespace vicreg::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;

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

DatasetSpec Spec(const std::string& name, const std::string& dir, const std::string& split = "train") {
  DatasetSpec s;
  s.name = name;
  s.data_dir = dir;
  s.split = split;
  return s;
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

int Pixel(int i, int c, int y, int x) { return (i * 7 + c * 3 + y * 5 + x) % 256; }

void ExpectPixels(const Dataset& ds, int first = 0) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < ds.size(); ++i) idx.push_back(i);
  at::Tensor im, lb;
  ds.Fetch(idx, &im, &lb);
  ASSERT_EQ(im.sizes(), (std::vector<int64_t>{ds.size(), 3, 32, 32}));
  for (int i = 0; i < ds.size(); ++i)
    for (int c = 0; c < 3; ++c)
      for (int y : {0, 9, 31})
        for (int x : {0, 17, 31})
          ASSERT_EQ(im[i][c][y][x].item<int>(), Pixel(first + i, c, y, x)) << ds.name() << " " << i << c << y << x;
}

// The files of tests/data/write_python_formats.py, written at run time by /usr/bin/python3's pickle.
// Each test asks for the parts it reads (ctest runs every test in its own process).
class PythonFormats : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { dir_.reset(); }
  // Writes the parts not written yet in this process; skips the test when Python lacks a module.
  void Need(const std::vector<std::string>& parts) {
    if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "/usr/bin/python3 with numpy is needed (deploy/install-deps.sh)";
    if (!dir_) {
      dir_ = std::make_unique<TempDir>();
      marker_ = *dir_ / "EXECUTED";
    }
    std::vector<std::string> args = {*dir_ / "files", marker_};
    for (const auto& p : parts)
      if (written_.insert(p).second) args.push_back(p);
    if (args.size() == 2) return;
    const int rc =
        testing::RunPython(std::string(VICREG_SOURCE_DIR) + "/tests/data/write_python_formats.py", args);
    ASSERT_EQ(rc, 0) << "write_python_formats.py failed";
    ASSERT_FALSE(Exists(marker_)) << "writing the files ran one";
  }
  static std::string Files(const std::string& sub) { return *dir_ / ("files/" + sub); }

  static std::unique_ptr<TempDir> dir_;
  static std::string marker_;
  static std::set<std::string> written_;
};
std::unique_ptr<TempDir> PythonFormats::dir_;
std::string PythonFormats::marker_;
std::set<std::string> PythonFormats::written_;

// CIFAR-10 and CIFAR-100 in one test (each ctest test is a process that loads LibTorch).
TEST_F(PythonFormats, Cifar10And100OfficialLayoutInEveryPickleProtocol) {
  Need({"cifar"});
  if (IsSkipped() || HasFatalFailure()) return;
  for (const std::string style : {"py2", "2", "3", "4", "5"}) {
    SCOPED_TRACE("style " + style);
    // data_dir = torchvision's root (holding cifar-10-batches-py/), or that folder itself.
    auto train = OpenDataset(Spec("cifar10", Files(style)));
    ASSERT_EQ(train->size(), 10);
    EXPECT_EQ(train->num_classes(), 10);
    EXPECT_EQ(train->name(), "cifar10:train");
    EXPECT_EQ(train->class_names().at(9), "truck");  // from batches.meta
    for (int i = 0; i < 10; ++i) EXPECT_EQ(train->label(i), i % 10);
    ExpectPixels(*train);
    auto test = OpenDataset(Spec("cifar10", Files(style + "/cifar-10-batches-py"), "test"));
    ASSERT_EQ(test->size(), 2);
    EXPECT_EQ(test->label(0), 3);
    EXPECT_EQ(test->label(1), 4);
    ExpectPixels(*test);
  }
  // CIFAR-100: fine labels, names from meta.
  for (const std::string style : {"py2", "2", "4", "5"}) {
    SCOPED_TRACE("style " + style);
    auto train = OpenDataset(Spec("cifar100", Files(style)));
    ASSERT_EQ(train->size(), 3);
    EXPECT_EQ(train->num_classes(), 100);
    EXPECT_EQ(train->label(1), 37);
    EXPECT_EQ(train->label(2), 74);
    ASSERT_EQ(train->class_names().size(), 100u);
    EXPECT_EQ(train->class_names()[37], "class37");
    ExpectPixels(*train);
    EXPECT_EQ(OpenDataset(Spec("cifar100", Files(style), "test"))->size(), 2);
  }
}

// Malicious, wrong and truncated pickles in one test.
TEST_F(PythonFormats, MaliciousWrongAndTruncatedPicklesAreRefusedNamingTheFileAndNothingRuns) {
  Need({"bad", "evil", "cifar"});
  if (IsSkipped() || HasFatalFailure()) return;
  // First show that the files are what they claim: Python's own pickle.load runs them.
  for (const std::string name : {"reduce_p2", "reduce_p4", "eval_p3", "inst", "obj"}) {
    const std::string cmd = "/usr/bin/python3 -c 'import pickle,sys; pickle.load(open(sys.argv[1],\"rb\"))' '" +
                            Files("evil/" + name) + "' >/dev/null 2>&1";
    (void)std::system(cmd.c_str());
    EXPECT_TRUE(Exists(marker_)) << name << " does not run code under pickle.load: the test proves nothing";
    std::remove(marker_.c_str());
  }
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"reduce_p2", {"GLOBAL at byte", "'posix.system'"}},
      {"reduce_p4", {"STACK_GLOBAL at byte", "'posix.system'"}},
      {"eval_p3", {"'builtins.eval'"}},
      {"inst", {"INST at byte"}},
      {"obj", {"GLOBAL", "'os.system'"}},
      {"newobj", {"GLOBAL", "'os.system'"}},
      {"numpy_other", {"'numpy.load'"}},
  };
  for (const auto& [name, parts] : cases) {
    SCOPED_TRACE(name);
    TempDir tmp;
    // Put the file where the reader looks for a batch: data_dir/test_batch.
    ASSERT_EQ(std::system(("cp '" + Files("evil/" + name) + "' '" + tmp / "test_batch" + "'").c_str()), 0);
    const std::string msg = UserErrorOf([&] { OpenDataset(Spec("cifar10", tmp.path(), "test")); });
    EXPECT_THAT(msg,
                AllOf(HasSubstr(tmp / "test_batch"), HasSubstr("refusing pickle"), HasSubstr("never imports or runs")));
    for (const auto& p : parts) EXPECT_THAT(msg, HasSubstr(p));
    EXPECT_FALSE(Exists(marker_)) << "reading " << name << " executed it";
  }

  const std::vector<std::pair<std::string, std::vector<std::string>>> bad_cases = {
      {"list_top", {"must be a pickled dict", "found a list"}},
      {"no_labels", {"missing key 'labels'", "keys found: data"}},
      {"data_int64", {"uint8 array [N, 3072]", "i8 [2, 3072]"}},
      {"data_1024", {"[2, 1024]"}},
      {"data_fortran", {"Fortran order"}},
      {"labels_count", {"holds 1 labels", "2 images"}},
      {"label_10", {"label 10 of image 1", "0..9"}},
      {"labels_str", {"'labels' must hold ints, found a bytes"}},
      {"truncated", {"truncated pickle"}},
      {"no_stop", {"ends without STOP"}},
  };
  for (const auto& [name, parts] : bad_cases) {
    SCOPED_TRACE(name);
    TempDir tmp;
    ASSERT_EQ(std::system(("cp '" + Files("bad/" + name) + "' '" + tmp / "test_batch" + "'").c_str()), 0);
    const std::string msg = UserErrorOf([&] { OpenDataset(Spec("cifar10", tmp.path(), "test")); });
    EXPECT_THAT(msg, HasSubstr(tmp / "test_batch"));
    for (const auto& p : parts) EXPECT_THAT(msg, HasSubstr(p));
  }
  // A binary-version record file under the Python name: not a pickle.
  TempDir tmp;
  testing::WriteBytes(tmp / "test_batch", std::vector<uint8_t>(3073, 7));
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("cifar10", tmp.path(), "test")); }),
              AllOf(HasSubstr(tmp / "test_batch"), HasSubstr("unknown opcode 0x07")));
  // Nothing at all: the message names both layouts.
  TempDir empty;
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("cifar10", empty.path())); }),
              AllOf(HasSubstr("data_batch_1.bin"), HasSubstr("cifar-10-batches-py")));
  // A bad meta file is refused too (it is read when present).
  TempDir meta;
  ASSERT_EQ(std::system(("cp -r '" + Files("py2/cifar-10-batches-py") + "' '" + meta.path() + "/'").c_str()), 0);
  ASSERT_EQ(
      std::system(("cp '" + Files("evil/reduce_p2") + "' '" + meta / "cifar-10-batches-py/batches.meta" + "'").c_str()),
      0);
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("cifar10", meta.path(), "test")); }),
              AllOf(HasSubstr("batches.meta"), HasSubstr("refusing pickle")));
  EXPECT_FALSE(Exists(marker_));
}

// The torch.save'd files of tests/data/pt/ (written once by write_python_formats.py's part `pt` with
// python3-torch 1.13 and checked in: importing torch costs seconds per test process). evil.pt would
// `touch` kEvilMarker under Python's torch.load.
const std::string kPt = std::string(VICREG_SOURCE_DIR) + "/tests/data/pt/";
const std::string kEvilMarker = "/tmp/vicreg_torch_cache_evil_EXECUTED";

TEST(TorchSaveCache, EveryLayoutReadAndWhatItCannotReadRefusedNamingTheFile) {
  auto Files = [](const std::string& sub) { return kPt + sub.substr(3); };  // "pt/x.pt" -> tests/data/pt/x.pt
  std::remove(kEvilMarker.c_str());
  for (const std::string name : {"nchw", "nhwc", "nhwc_view", "float"}) {
    SCOPED_TRACE(name);
    auto ds = OpenDataset(Spec("tensor_cache", Files("pt/" + name + ".pt")));
    ASSERT_EQ(ds->size(), 4);
    EXPECT_EQ(ds->channels(), 3);
    EXPECT_EQ(ds->height(), 32);
    EXPECT_EQ(ds->num_classes(), 10);
    EXPECT_EQ(ds->label(3), 9);
    ExpectPixels(*ds);
  }
  EXPECT_EQ(OpenDataset(Spec("tensor_cache", Files("pt/float.pt")))->class_names().at(4), "4");
  auto slice = OpenDataset(Spec("tensor_cache", Files("pt/slice.pt")));  // a view at a storage offset
  ASSERT_EQ(slice->size(), 2);
  EXPECT_EQ(slice->num_classes(), 10);
  EXPECT_EQ(slice->label(0), 1);
  ExpectPixels(*slice, 1);
  auto gray = OpenDataset(Spec("tensor_cache", Files("pt/gray.pt")));  // [N, H, W], int32 labels
  EXPECT_EQ(gray->channels(), 1);
  at::Tensor im, lb;
  gray->Fetch({2}, &im, &lb);
  EXPECT_EQ(im[0][2][5][6].item<int>(), Pixel(2, 0, 5, 6));
  // <data_dir>/<split>.pt
  TempDir tmp;
  ASSERT_EQ(std::system(("cp '" + Files("pt/nhwc.pt") + "' '" + tmp / "test.pt" + "'").c_str()), 0);
  EXPECT_EQ(OpenDataset(Spec("tensor_cache", tmp.path(), "test"))->size(), 4);
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("tensor_cache", tmp.path(), "train")); }),
              AllOf(HasSubstr("train.safetensors"), HasSubstr("train.pt")));

  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"evil", {"unknown type posix.system", "plain torch tensors in a plain dict"}},
      {"numpy", {"unknown type numpy", "numpy arrays"}},
      {"odict", {"OrderedDict"}},
      {"legacy", {"legacy format", "torch.save(obj, path)"}},
      {"truncated", {"LibTorch cannot read"}},
      {"float_255", {"must lie in 0..1", "found values from 0"}},
      {"labels_count", {"'labels' has shape [3]", "[4]"}},
      {"labels_float", {"integer tensor", "Float"}},
      {"other_keys", {"no tensor 'images'", "keys found: data, targets"}},
      {"list", {"dict", "found a GenericList"}},
  };
  for (const auto& [name, parts] : cases) {
    SCOPED_TRACE(name);
    const std::string path = Files("pt/" + name + ".pt");
    const std::string msg = UserErrorOf([&] { OpenDataset(Spec("tensor_cache", path)); });
    EXPECT_THAT(msg, HasSubstr(path));
    for (const auto& p : parts) EXPECT_THAT(msg, HasSubstr(p));
    EXPECT_THAT(msg, Not(HasSubstr("Exception raised from")));  // one line, no LibTorch stack
  }
  EXPECT_FALSE(Exists(kEvilMarker));
  TempDir notzip;
  testing::WriteBytes(notzip / "x.pt", {'n', 'o', 't', ' ', 'a', ' ', 'z', 'i', 'p'});
  EXPECT_THAT(UserErrorOf([&] { OpenDataset(Spec("tensor_cache", notzip / "x.pt")); }),
              AllOf(HasSubstr(notzip / "x.pt"), HasSubstr("not a file written by torch.save")));
}

// Found by fuzz_data_torch_cache: LibTorch 1.13's own byte reader let miniz read past the end of
// a garbled archive (heap overflow), its unpickler allocated whatever a length field claimed, it
// sized a tensor's storage by the pickle's element count, not by the record, and put a tensor at
// any offset the pickle gave (heap overflows).
// Every such file is now refused naming it, before LibTorch allocates or reads out of bounds
// (worker/data/torch_archive.h; under ASan in the fuzz corpus replays).
TEST(TorchSaveCache, TruncatedOrWithGarbledSizesIsRefusedNamingTheFile) {
  std::vector<uint8_t> good;
  {
    FILE* f = std::fopen((kPt + "nhwc.pt").c_str(), "rb");
    ASSERT_NE(f, nullptr);
    for (int c; (c = std::fgetc(f)) != EOF;) good.push_back(static_cast<uint8_t>(c));
    std::fclose(f);
  }
  ASSERT_GT(good.size(), 200u);
  auto find = [&](const std::string& needle) {
    auto it = std::search(good.begin(), good.end(), needle.begin(), needle.end());
    return it == good.end() ? std::string::npos : static_cast<size_t>(it - good.begin());
  };
  auto put32 = [](std::vector<uint8_t>& b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string expect;
  };
  std::vector<Case> cases;
  for (size_t keep : {good.size() - 1, good.size() - 22, good.size() / 2, size_t{64}})
    cases.push_back({"truncated_" + std::to_string(keep), {good.begin(), good.begin() + keep}, "LibTorch cannot read"});
  const size_t cd = find("PK\x01\x02");
  ASSERT_NE(cd, std::string::npos);
  Case uncomp{"entry_claims_2GB", good, "claims 2147483647"};  // data.pkl, the first entry
  put32(uncomp.bytes, cd + 24, 0x7FFFFFFF);
  cases.push_back(uncomp);
  const size_t key = find(std::string("X\x06\x00\x00\x00images", 11));  // BINUNICODE 'images'
  ASSERT_NE(key, std::string::npos);
  Case str{"pickle_string_of_4GB", good, "pickle truncated"};
  put32(str.bytes, key + 1, 0xFFFFFFF0);
  cases.push_back(str);
  // The images' storage: ('storage', ByteStorage, '0', 'cpu', numel) with numel = 12288 as
  // BININT2 after "cpu" and its BINPUT; a bigger count than the record holds.
  const size_t cpu = find(std::string("X\x03\x00\x00\x00" "cpu", 8));
  ASSERT_NE(cpu, std::string::npos);
  ASSERT_EQ(good[cpu + 8], 'q');
  ASSERT_EQ(good[cpu + 10], 'M');
  Case numel{"storage_numel_past_record", good, "claims 65535 bytes, its record holds 12288"};
  numel.bytes[cpu + 11] = numel.bytes[cpu + 12] = 0xFF;
  cases.push_back(numel);
  // The labels (4 int64 in a storage of 4, the second tensor): storage offset 0 -> 1, as BININT1
  // right after the BINPERSID of their storage ('Q', 'K', offset).
  const std::string offset_needle("QK\x00", 3);
  auto off = std::search(good.begin(), good.end(), offset_needle.begin(), offset_needle.end());
  ASSERT_NE(off, good.end());
  off = std::search(off + 1, good.end(), offset_needle.begin(), offset_needle.end());
  ASSERT_NE(off, good.end());
  Case view{"view_past_storage", good, "reaches past its storage of 32 bytes"};
  view.bytes[static_cast<size_t>(off - good.begin()) + 2] = 1;
  cases.push_back(view);
  TempDir tmp;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = tmp / (c.name + ".pt");
    testing::WriteBytes(path, c.bytes);
    const std::string msg = UserErrorOf([&] { OpenDataset(Spec("tensor_cache", path)); });
    EXPECT_THAT(msg, AllOf(HasSubstr(path), HasSubstr(c.expect)));
  }
}

// ---- the pickle reader on hand-made byte strings (no Python needed) ---------------------------

std::string ParseError(const std::string& bytes) {
  return UserErrorOf([&] { pickle::Parse(bytes, "f.pkl"); });
}

TEST(PickleData, ReadsDataOpcodesAndRefusesEverythingElse) {
  namespace pk = pickle;
  using namespace std::string_literals;  // "..."s keeps embedded NUL bytes
  // {b'a': [1, -2, 300, 2**40], 'b': (None, True, 1.5)} at protocol 2, by hand.
  const std::string ok =
      "\x80\x02}q\x00(U\x01"
      "a]q\x01(K\x01J\xfe\xff\xff\xffM\x2c\x01\x8a\x06\x00\x00\x00\x00\x00\x01"
      "eX\x01\x00\x00\x00"
      "bN\x88G\x3f\xf8\x00\x00\x00\x00\x00\x00\x87u."s;
  pk::ValuePtr v = pk::Parse(ok, "f.pkl");
  ASSERT_EQ(v->kind, pk::Kind::kDict);
  const pk::Value* a = pk::Find(*v, "a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items.size(), 4u);
  EXPECT_EQ(a->items[1]->i, -2);
  EXPECT_EQ(a->items[2]->i, 300);
  EXPECT_EQ(a->items[3]->i, int64_t{1} << 40);
  const pk::Value* b = pk::Find(*v, "b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->kind, pk::Kind::kTuple);
  EXPECT_DOUBLE_EQ(b->items[2]->f, 1.5);

  EXPECT_THAT(ParseError(""s), HasSubstr("empty file"));
  EXPECT_THAT(ParseError("\x80\x06}."s), HasSubstr("protocol 6"));
  EXPECT_THAT(ParseError("\x80\x02]h\x05."s), HasSubstr("memo get of an index never put"));
  EXPECT_THAT(ParseError("\x80\x02\xff"s), HasSubstr("unknown opcode 0xff"));
  EXPECT_THAT(ParseError("\x80\x02]q\x00h\x00"
                         "a."s),
              HasSubstr("self-referencing"));  // l.append(l)
  EXPECT_THAT(ParseError("\x80\x02(K\x01K\x02."s), HasSubstr("STOP with 2 values"));
  EXPECT_THAT(ParseError("\x80\x02X\xff\xff\xff\x7f"
                         "abc"s),
              HasSubstr("truncated pickle"));
  EXPECT_THAT(ParseError(std::string("\x80\x02\x8a\x09", 4) + std::string(9, '\1') + "."), HasSubstr("64 bits"));
  EXPECT_THAT(ParseError("\x80\x02"
                         "cos\nsystem\n."s),
              AllOf(HasSubstr("f.pkl"), HasSubstr("'os.system'")));
  EXPECT_THAT(ParseError("\x80\x02"
                         "c\x1b[31m\nx\n."s),
              AllOf(HasSubstr("not a Python identifier"), Not(HasSubstr("\x1b"))));
  EXPECT_THAT(ParseError("\x80\x02}}b."s), HasSubstr("BUILD sets the state of a dict"));
  EXPECT_THAT(ParseError("\x80\x02"
                         "2."s),
              HasSubstr("DUP"));
  EXPECT_THAT(ParseError("\x80\x02"
                         "P1\n."s),
              HasSubstr("PERSID"));
  // Deep nesting is bounded (and the values are freed without deep recursion).
  std::string deep = "\x80\x02";
  for (int i = 0; i < 100; ++i) deep += "]";
  for (int i = 0; i < 99; ++i) deep += "a";
  EXPECT_THAT(ParseError(deep + "."), HasSubstr("nested deeper than 64"));
}

}  // namespace
}  // namespace vicreg::data
