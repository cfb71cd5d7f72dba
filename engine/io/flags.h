// flags.h — command-line flags for the thin mains: "--name value" or "--name=value", boolean
// switches, -h/--help. Every flag a program accepts is declared; an unknown flag, a missing value
// or a malformed number ends the program with one message and exit status 2.
#pragma once
#include <map>
#include <string>
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
  double number(const std::string& name, double def);
  bool boolean(const std::string& name);  // a switch: present or not
  const std::vector<std::string>& positional() const { return positional_; }
  // Fails on any flag that no call above declared. Call after reading every flag.
  void done();
  [[noreturn]] void fail(const std::string& msg) const;

 private:
  std::string prog_, usage_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> used_;
  std::vector<std::string> positional_, switches_seen_;
};

}  // namespace dfq
