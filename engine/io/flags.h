// flags.h — command-line flags for the thin mains: "--name value" or "--name=value", boolean
// switches, -h/--help. Every flag a program accepts is declared; an unknown flag, a missing value,
// a malformed or non-finite number, a value outside a flag's choices, a value given to a switch
// ("--fold_bn 0": a switch takes none; "--fold_bn=false" is accepted) or a stray positional
// argument ends the program with one message and exit status 2, before any work starts.
// Hand-written rather than Debian's CLI11: the mains declare and read each flag in one call
// (flags.integer("--iters", 500)) and share groups of flags through small structs (BitFlags,
// MethodCli), which this keeps at one line per flag; CLI11's bind-then-parse model would add a
// dependency and rewrite every main for the same checks, which are ~150 lines here.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dfq {

class Flags {
 public:
  // usage: the text printed by --help (and after a flag error).
  Flags(int argc, char** argv, std::string usage);
  // Declare-and-read. Must be called for every accepted flag before done().
  std::string str(const std::string& name, const std::string& def);
  // An integer that must fit an int (what the mains keep their counts and sizes in: a larger value
  // would wrap silently); integer64 takes any long long (seeds). Out of range: a flag error.
  long long integer(const std::string& name, long long def);
  long long integer64(const std::string& name, long long def);
  double number(const std::string& name, double def);  // finite numbers only
  // A value that must be one of `choices` (named in the error).
  std::string choice(const std::string& name, const std::string& def, const std::vector<std::string>& choices);
  // A switch: false when absent, true when present; "--name=true|false|1|0|yes|no" explicitly.
  bool boolean(const std::string& name);
  // The positional arguments, in command-line order. A program that never asks for them refuses any.
  std::vector<std::string> positional();
  // Fails on any flag no call above declared, and on positional arguments the program did not ask
  // for. Call after reading every flag.
  void done();
  [[noreturn]] void fail(const std::string& msg) const;
  const std::string& program() const { return prog_; }

 private:
  struct Value {
    std::string text;
    bool given = false;     // a value was given (--name value, --name=value)
    bool attached = false;  // ... as --name=value
    int next_index = -1;    // for "--name word": argv index of word (a positional after all for a switch)
  };
  std::string prog_, usage_;
  std::map<std::string, Value> values_;
  std::map<std::string, bool> used_;
  std::vector<std::pair<int, std::string>> positional_;  // argv index, text
  std::vector<std::pair<std::string, std::string>> swallowed_;  // switch, the word after it
  bool positional_read_ = false;
};

// "2,4,8" -> its numbers; throws std::invalid_argument naming `flag` on an empty item, a trailing
// comma, a malformed or a non-finite number.
std::vector<double> parse_number_list(const std::string& text, const std::string& flag);

}  // namespace dfq
