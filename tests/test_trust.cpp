// test_trust.cpp — results a user can trust (issue 13): a diverged or mismatched run is refused,
// never scored; every flag is checked before work starts; every write is checked. Each case runs
// the real program the way a user would and checks the exit status, the one message, and that no
// half-written output is left behind.
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <limits>

#include "engine/diverged.h"
#include "engine/io/flags.h"
#include "engine/io/idx.h"
#include "engine/io/image.h"
#include "engine/io/json_out.h"
#include "engine/io/npy.h"
#include "engine/io/weights.h"
#include "models/eval.h"
#include "models/registry.h"
#include "quant/method_cli.h"
#include "test_util.h"

using namespace dfq;
using dfq::test::read_text;
using dfq::test::run_program;
using dfq::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A random-weight resnet18 with `classes` outputs at `path`; with set_bias, every fc bias is fc_bias.
void write_model(const std::string& path, int classes = 10, float fc_bias = 0.f, bool set_bias = false) {
  auto m = models::create_model("resnet18", classes, 1, false);
  auto sd = m->state_dict();
  if (set_bias)
    for (auto& [name, t] : sd)
      if (name == "fc.bias") t.copy_(Tensor::full(t.shape(), fc_bias));
  write_weight_file(path, "resnet18", classes, sd);
}

// root/<class k>/img.png for k < classes, `per_class` small images each.
void write_image_folder(const fs::path& root, int classes, int per_class = 1) {
  for (int c = 0; c < classes; ++c) {
    char name[16];
    std::snprintf(name, sizeof name, "c%02d", c);
    fs::create_directories(root / name);
    for (int i = 0; i < per_class; ++i) {
      ImageU8 img;
      img.h = img.w = 12;
      img.data.assign(12 * 12 * 3, static_cast<uint8_t>(20 * c + 7 * i));
      save_png((root / name / ("i" + std::to_string(i) + ".png")).string(), img);
    }
  }
}

struct Case {
  std::string args, message;
  int rc;
};

// Runs each case; checks status, message, and that none of `must_not_exist` appeared.
void run_cases(const std::string& program, const std::vector<Case>& cases, const TempDir& dir,
               const std::vector<std::string>& must_not_exist) {
  for (const Case& c : cases) {
    CAPTURE(c.args);
    const int rc = run_program(program, c.args, dir / "log.txt");
    const std::string log = read_text(dir / "log.txt");
    CAPTURE(log);
    CHECK(rc == c.rc);
    CHECK(log.find(c.message) != std::string::npos);
    for (const std::string& f : must_not_exist) {
      CHECK_FALSE(fs::exists(f));
      CHECK_FALSE(fs::exists(f + ".tmp"));
    }
  }
}

// Lowers this process's file-size limit (writes past it fail with EFBIG, as on a full disk) for
// the guard's lifetime.
struct FileSizeLimit {
  rlimit old{};
  void (*old_handler)(int) = nullptr;
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old);
    old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit r = old;
    r.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &r);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
  }
};

}  // namespace

TEST_CASE("accuracy: a logits row with a NaN or an infinity is wrong for top-1 and top-5, and counted") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  // rows: NaN everywhere; NaN beside a correct maximum; +inf at the label; a clean hit
  Tensor logits = Tensor::from_vector({nan, nan, nan, 5.f, nan, 1.f, 0.f, inf, 0.f, 3.f, 1.f, 0.f}, {4, 3});
  Tensor labels = Tensor::from_vector_i64({0, 0, 1, 0}, {4});
  CHECK(topk_correct(logits, labels, 1) == 1);
  CHECK(topk_correct(logits, labels, 3) == 1);
  CHECK(nonfinite_rows(logits) == 3);
  CHECK_THROWS_WITH_AS(topk_correct(logits, Tensor::from_vector_i64({0, 3, 1, 0}, {4}), 1), doctest::Contains("out of range"),
                       std::out_of_range);
}

TEST_CASE("evaluate: a NaN classifier bias scores 0 %, never 100 %, and says how many rows were non-finite") {
  TempDir dir("trust_nan");
  write_image_folder(dir.p / "val", 3, 2);
  write_model(dir / "nan.bin", 10, std::numeric_limits<float>::quiet_NaN(), true);
  const std::string args = "--weights " + (dir / "nan.bin") + " --data " + (dir / "val") + " --json " + (dir / "r.json");
  REQUIRE(run_program(DFQ_EVALUATE, args, dir / "log.txt") == 0);
  const std::string log = read_text(dir / "log.txt"), js = read_text(dir / "r.json");
  CAPTURE(log);
  CHECK(log.find("top-1 0.00 %  top-5 0.00 %") != std::string::npos);
  CHECK(log.find("6 with non-finite logits") != std::string::npos);
  CHECK(js.find("\"top1\": 0,") != std::string::npos);
  CHECK(js.find("\"nonfinite\": 6") != std::string::npos);
  // and the same model with a finite bias has no such line
  write_model(dir / "ok.bin", 10, 0.f, true);
  REQUIRE(run_program(DFQ_EVALUATE, "--weights " + (dir / "ok.bin") + " --data " + (dir / "val"), dir / "log.txt") == 0);
  CHECK(read_text(dir / "log.txt").find("non-finite") == std::string::npos);
}

TEST_CASE("labels: data with more classes than the model's classifier is refused, both counts named, by every main") {
  TempDir dir("trust_labels");
  write_image_folder(dir.p / "val12", 12);
  write_model(dir / "r18.bin");
  const std::string w = "--weights " + (dir / "r18.bin") + " --data " + (dir / "val12");
  const std::string msg = "has 12 classes but the model (resnet18) has 10 outputs";
  run_cases(DFQ_EVALUATE, {{w + " --json " + (dir / "e.json"), msg, 1}}, dir, {dir / "e.json"});
  run_cases(DFQ_ZEROQ_MAIN, {{w + " --iters 1 --batch_size 2 --img_size 16 --save " + (dir / "q.bin"), msg, 1}}, dir,
            {dir / "q.bin"});
  run_cases(DFQ_GDFQ_MAIN, {{w + " --n_iter 1 --batch_size 2 --img_size 16 --out " + (dir / "g"), msg, 1}}, dir,
            {dir / "g/checkpoint.bin"});
  run_cases(DFQ_SQUANT_MAIN, {{w + " --noise_batch 2 --img_size 16 --save " + (dir / "s.bin"), msg, 1}}, dir,
            {dir / "s.bin"});
  // a labels file naming class 11 on a flat folder: the same refusal
  fs::create_directories(dir.p / "flat");
  ImageU8 img;
  img.h = img.w = 8;
  img.data.assign(8 * 8 * 3, 100);
  save_png((dir.p / "flat" / "a.png").string(), img);
  save_png((dir.p / "flat" / "b.png").string(), img);
  {
    std::ofstream f(dir / "labels.txt");
    f << "a.png 3\nb.png 11\n";
  }
  run_cases(DFQ_EVALUATE,
            {{"--weights " + (dir / "r18.bin") + " --data " + (dir / "flat") + " --labels " + (dir / "labels.txt"),
              "has 12 classes", 1}},
            dir, {});
}

TEST_CASE("zeroq_main: flags are checked before any work — switches, stray words, non-finite numbers, outputs") {
  TempDir dir("trust_zeroq_flags");
  write_model(dir / "r18.bin");
  fs::create_directories(dir.p / "afile_parent");
  { std::ofstream(dir / "plain_file") << "x"; }
  const std::string w = "--weights " + (dir / "r18.bin") + " --iters 1 --batch_size 2 --img_size 16";
  const std::string q = dir / "q.bin";
  run_cases(DFQ_ZEROQ_MAIN,
            {
                {w + " --fold_bn 0 --save " + q, "a switch takes no value", 2},
                {w + " --fold_bn=maybe --save " + q, "--fold_bn", 2},
                {w + " stray --save " + q, "unexpected argument 'stray'", 2},
                {w + " --lr inf --save " + q, "finite", 2},
                {w + " --lr nan --save " + q, "finite", 2},
                {w + " --zeroq_1x1 bogus --save " + q, "--zeroq_1x1 must be one of batch, mean, nan", 2},
                {w + " --device tpu --save " + q, "--device must be one of cpu, cuda", 2},
                {w + " --save " + (dir / "no_such_dir/q.bin"), "does not exist", 2},
                {w + " --save " + (dir / "plain_file/q.bin") + " --json " + (dir / "r.json"), "does not exist", 2},
                {w + " --save " + (dir / "afile_parent"), "is a folder", 2},
                {w + " --json " + (dir / "plain_file/r.json") + " --save " + q, "--json", 2},
                {w + " --out " + (dir / "plain_file/o") + " --save " + q, "--out", 2},
                {w + " --labels " + (dir / "plain_file") + " --save " + q, "--labels needs --data", 2},
                {w + " --distilled " + (dir / "none.npy") + " --save " + q, "none.npy", 2},
            },
            dir, {q, dir / "r.json"});
  // --fold_bn=false is the explicit way to say "off"; it runs.
  REQUIRE(run_program(DFQ_ZEROQ_MAIN, w + " --fold_bn=false --save " + q, dir / "log.txt") == 0);
  CHECK(read_text(dir / "log.txt").find("BN unfolded") != std::string::npos);
  REQUIRE(run_program(DFQ_ZEROQ_MAIN, w + " --fold_bn=true --save " + (dir / "q2.bin"), dir / "log.txt") == 0);
  CHECK(read_text(dir / "log.txt").find("BN folded") != std::string::npos);
}

TEST_CASE("training loops that diverge stop with exit 3 and a message naming the phase, epoch and iteration") {
  TempDir dir("trust_diverge");
  write_model(dir / "r18.bin");
  // ZeroQ as the official code (NaN per-image std on 1x1 maps): the loss is NaN at once.
  run_cases(DFQ_ZEROQ_MAIN,
            {{"--weights " + (dir / "r18.bin") + " --iters 5 --batch_size 2 --img_size 32 --zeroq_1x1 nan --save " +
                  (dir / "q.bin") + " --out " + (dir / "o") + " --json " + (dir / "r.json"),
              "ZeroQ distillation, iteration 1 of 5", 3}},
            dir, {dir / "q.bin", dir / "r.json", dir / "o/distilled.npy"});
  // GDFQ: epoch 1 is warm-up (Q not stepped) and checkpointed; Q's first steps at lr 1e30 blow it up.
  const std::string g = dir / "g";
  const std::string args = "--weights " + (dir / "r18.bin") +
                           " --n_epochs 3 --n_iter 4 --batch_size 4 --img_size 16 --warmup_epochs 1 --milestones 9 "
                           "--q_lr 1e30 --out " + g + " --json " + (dir / "g.json");
  const int rc = run_program(DFQ_GDFQ_MAIN, args, dir / "log.txt");
  const std::string log = read_text(dir / "log.txt");
  CAPTURE(log);
  CHECK(rc == 3);
  CHECK(log.find("training diverged") != std::string::npos);
  CHECK(log.find("GDFQ student step, epoch 2 of 3") != std::string::npos);
  CHECK_FALSE(fs::exists(g + "/quantized.bin"));
  CHECK_FALSE(fs::exists(dir / "g.json"));
  // The last good checkpoint (after epoch 1) is kept, and the log holds epoch 1 only.
  REQUIRE(fs::exists(g + "/checkpoint.bin"));
  CHECK(WeightFile::open(g + "/checkpoint.bin").get("meta").to_vector_i64()[1] == 1);
  const std::string csv = read_text(g + "/log.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 2);
}

TEST_CASE("train_fp: a diverging run stops before writing weights; bad flags fail before training") {
  if (!fs::exists(fashion_mnist_dir())) {
    MESSAGE("Fashion-MNIST not installed: train_fp cases skipped");
    return;
  }
  TempDir dir("trust_train_fp");
  const std::string tf = DFQ_TRAIN_FP;
  const std::string out = dir / "w.bin";
  run_cases(tf,
            {
                {"--dataset fashion-mnist --epochs 1 --lr 1e30 --out " + out, "train_fp, epoch 1 of 1, step", 3},
                {"--dataset fashion-mnist --no_flip 1 --out " + out, "a switch takes no value", 2},
                {"--dataset fashion-mnist --lr inf --out " + out, "finite", 2},
                {"--dataset fashion-mnist --out " + (dir / "missing/w.bin"), "does not exist", 2},
                {"--dataset fashion-mnist --schedule linear --out " + out, "--schedule must be one of", 2},
                {"--dataset fashion-mnist extra --out " + out, "unexpected argument 'extra'", 2},
            },
            dir, {out});
}

TEST_CASE("gdfq_main: bad values fail before any work; --resume refuses a checkpoint made with other settings") {
  TempDir dir("trust_gdfq");
  write_model(dir / "r18.bin");
  const std::string w = "--weights " + (dir / "r18.bin");
  const std::string tiny = " --n_epochs 2 --n_iter 1 --batch_size 4 --img_size 16 --warmup_epochs 1 --milestones 9 --q_lr 0.01";
  const std::string a = dir / "a";
  run_cases(DFQ_GDFQ_MAIN,
            {
                {w + tiny + " --range_epochs 0 --out " + a, "--range_epochs must be >= 1", 2},
                {w + tiny + " --q_lr inf --out " + a, "finite", 2},
                {w + tiny + " --bns_weight nan --out " + a, "finite", 2},
                {w + tiny + " --bns_weight -1 --out " + a, "--bns_weight", 2},
                {w + tiny + " --no_kd 0 --out " + a, "a switch takes no value", 2},
                {w + tiny + " --resume yes --out " + a, "a switch takes no value", 2},
                {w + tiny + " --out " + (dir / "r18.bin"), "not a folder", 2},
                {w + tiny + " --json " + (dir / "nodir/x.json") + " --out " + a, "does not exist", 2},
                {w + tiny + " --save " + (dir / "nodir/q.bin") + " --out " + a, "does not exist", 2},
            },
            dir, {a + "/checkpoint.bin", a + "/log.csv"});
  CHECK_FALSE(fs::exists(a));
  // One epoch of a two-epoch run, then resumes with one setting changed: each refused by name.
  REQUIRE(run_program(DFQ_GDFQ_MAIN, w + tiny + " --stop_after 1 --out " + a, dir / "log.txt") == 0);
  const std::string before = read_text(a + "/checkpoint.bin");
  {  // same architecture and shapes, other weights
    auto m = models::create_model("resnet18", 10, 2, false);
    write_weight_file(dir / "other.bin", "resnet18", 10, m->state_dict());
  }
  std::vector<Case> mismatches = {
      {w + " --n_epochs 2 --n_iter 1 --batch_size 4 --img_size 16 --warmup_epochs 1 --milestones 9 --q_lr 0.001", "--q_lr", 1},
      {w + tiny + " --bits 3/3", "--bits 4/4, this run has --bits 3/3", 1},
      {w + tiny + " --seed 5", "--seed 0, this run has --seed 5", 1},
      {w + tiny + " --n_iter 2", "--n_iter", 1},
      {w + " --n_epochs 2 --n_iter 1 --batch_size 6 --img_size 16 --warmup_epochs 1 --milestones 9 --q_lr 0.01", "--batch_size", 1},
      {w + tiny + " --warmup_epochs 0", "--warmup_epochs", 1},
      {w + " --n_epochs 3 --n_iter 1 --batch_size 4 --img_size 16 --warmup_epochs 1 --milestones 9 --q_lr 0.01", "--n_epochs", 1},
      {w + tiny + " --milestones 1", "--milestones", 1},
      {w + tiny + " --no_bns", "--no_bns", 1},
      {w + tiny + " --ste clip", "--ste", 1},
      {"--weights " + (dir / "other.bin") + tiny, "--weights (FNV-1a of the file)", 1},
  };
  for (Case& c : mismatches) c.args += " --resume --out " + a;
  run_cases(DFQ_GDFQ_MAIN, mismatches, dir, {a + "/quantized.bin"});
  CHECK(read_text(a + "/checkpoint.bin") == before);  // a refused resume touches nothing
  // What changes nothing computed may differ: --eval_every, --sample_every, --json.
  REQUIRE(run_program(DFQ_GDFQ_MAIN, w + tiny + " --eval_every 3 --sample_every 7 --json " + (dir / "j.json") + " --resume --out " + a,
                      dir / "log.txt") == 0);
  CHECK(fs::exists(a + "/quantized.bin"));
  CHECK(read_text(dir / "j.json").find("\"method\": \"GDFQ\"") != std::string::npos);
}

TEST_CASE("convert_weights and toy_experiment: stray arguments and unwritable outputs fail before work") {
  TempDir dir("trust_tools");
  const std::string pth = std::string(DFQ_GOLDEN_DIR) + "/pth/tiny_zip.pth";
  run_cases(DFQ_CONVERT_WEIGHTS,
            {
                {pth + " " + pth + " -o " + (dir / "w.bin"), "exactly one input", 2},
                {"--verbose=sometimes " + pth + " -o " + (dir / "w.bin"), "--verbose", 2},
                {pth + " -o " + (dir / "nodir/w.bin"), "nodir", 2},
            },
            dir, {dir / "w.bin"});
  // a switch before the input still finds the input
  CHECK(run_program(DFQ_CONVERT_WEIGHTS, "--list " + pth, dir / "log.txt") == 0);
  run_cases(DFQ_TOY_EXPERIMENT,
            {
                {"--out " + (dir / "nodir/toy.png"), "does not exist", 2},
                {"stray --out " + (dir / "toy.png"), "unexpected argument 'stray'", 2},
                {"--g_iters 1e3 --out " + (dir / "toy.png"), "--g_iters", 2},
            },
            dir, {dir / "toy.png"});
}

TEST_CASE("writes on a full disk: an error naming the file, and no half-written file or torn line") {
  TempDir dir("trust_full");
  Tensor big = Tensor::zeros({64, 1024});  // 256 KiB
  const std::string csv = dir / "log.csv";
  write_file_atomic(csv, "header\n");
  {
    FileSizeLimit limit(64 * 1024);
    CHECK_THROWS_WITH(save_npy(dir / "x.npy", big), doctest::Contains("x.npy"));
    CHECK_THROWS_WITH(write_file_atomic(dir / "t.txt", std::string(100000, 'a')), doctest::Contains("t.txt"));
    ImageU8 img;
    img.h = img.w = 512;
    img.data.resize(512 * 512 * 3);
    uint32_t x = 2463534242u;  // xorshift32 noise: PNG cannot squeeze it under the limit
    for (auto& v : img.data) x ^= x << 13, x ^= x >> 17, x ^= x << 5, v = static_cast<uint8_t>(x >> 24);
    CHECK_THROWS_WITH(save_png(dir / "p.png", img), doctest::Contains("p.png"));
    CHECK_THROWS_WITH(write_weight_file(dir / "w.bin", "resnet18", 10, {{"x", big}}), doctest::Contains("w.bin"));
    // an append that does not fit is cut back: the file keeps its old lines, no torn one
    write_file_atomic(dir / "filler", std::string(60 * 1024, 'f'));
    CHECK_THROWS_WITH(append_file(csv, std::string(70 * 1024, 'l') + "\n"), doctest::Contains("log.csv"));
  }
  CHECK(read_text(csv) == "header\n");
  for (const char* f : {"x.npy", "x.npy.tmp", "t.txt", "t.txt.tmp", "p.png", "p.png.tmp", "w.bin", "w.bin.tmp"})
    CHECK_FALSE(fs::exists(dir / f));
  // the same through a program: zeroq_main --save under a 64 KiB file-size limit
  write_model(dir / "r18.bin");
  const std::string cmd = "sh -c 'ulimit -f 128; trap \"\" XFSZ; exec " + std::string(DFQ_ZEROQ_MAIN) + " --weights " +
                          (dir / "r18.bin") + " --iters 1 --batch_size 2 --img_size 16 --save " + (dir / "q.bin") + "'";
  const int rc = run_program(cmd, "", dir / "log.txt");
  const std::string log = read_text(dir / "log.txt");
  CAPTURE(log);
  CHECK(rc == 1);
  CHECK(log.find("q.bin") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "q.bin"));
  CHECK_FALSE(fs::exists(dir / "q.bin.tmp"));
}

TEST_CASE("flags: switch values, positional order, choices (the parsing paths that do not exit)") {
  const char* argv[] = {"prog", "--list", "in.pth", "--n", "3", "--on=false", "--yes=1", "tail", "--x=-2.5e-3"};
  Flags f(9, const_cast<char**>(argv), "usage");
  CHECK(f.boolean("--list"));
  CHECK_FALSE(f.boolean("--on"));
  CHECK(f.boolean("--yes"));
  CHECK_FALSE(f.boolean("--absent"));
  CHECK(f.integer("--n", 0) == 3);
  CHECK(f.number("--x", 0) == doctest::Approx(-2.5e-3));
  CHECK(f.choice("--mode", "a", {"a", "b"}) == "a");
  CHECK(f.positional() == std::vector<std::string>{"in.pth", "tail"});
  f.done();
}

TEST_CASE("run options: recorded and compared by name; output path probes") {
  const quant::RunOptions a = {{"--bits", "4/4"}, {"--q_lr", "0.0001"}};
  CHECK(quant::decode_options(quant::encode_options(a)) == a);
  CHECK_NOTHROW(quant::require_same_options(a, a, "ck"));
  CHECK_THROWS_WITH(quant::require_same_options(a, {{"--bits", "4/4"}, {"--q_lr", "0.001"}}, "ck"),
                    doctest::Contains("--q_lr 0.0001, this run has --q_lr 0.001"));
  CHECK_THROWS_WITH(quant::require_same_options(a, {{"--seed", "0"}}, "ck"), doctest::Contains("does not record --seed"));
  TempDir dir("trust_probe");
  CHECK(output_file_problem(dir / "x.bin").empty());
  CHECK_FALSE(fs::exists(dir / "x.bin"));
  CHECK(output_file_problem(dir / "nope/x.bin").find("does not exist") != std::string::npos);
  CHECK(output_dir_problem(dir / "new/deeper").empty());
  CHECK_FALSE(fs::exists(dir / "new"));
  CHECK(std::distance(fs::directory_iterator(dir.p), fs::directory_iterator()) == 0);  // probes removed
  CHECK_THROWS_AS(require_finite_loss(std::nan(""), "x"), Diverged);
  CHECK_NOTHROW(require_finite_loss(1.5, "x"));
}

TEST_CASE("flags: parse_number_list (--mp_bits, --mp_check, gdfq's --milestones)") {
  CHECK(parse_number_list("2,4,8", "--mp_bits") == std::vector<double>{2, 4, 8});
  CHECK(parse_number_list("2.5", "--mp_check") == std::vector<double>{2.5});
  for (const char* bad : {"", ",", "2,", ",2", "2,,4", "2;4", "nan", "inf,2", "4x"})
    CHECK_THROWS_WITH_AS(parse_number_list(bad, "--mp_bits"), doctest::Contains("--mp_bits"), std::invalid_argument);
}
