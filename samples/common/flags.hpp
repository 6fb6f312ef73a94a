// Reading a command line the way the samples' flags read: "--name=value" or "--name value",
// bare arguments (URLs, a query) in between. Only the walking is here; what a flag means and
// how its value parses stays with each sample.
//
//   samples::FlagReader r(argc, argv);
//   while (r.next()) {
//     if (!r.is_flag()) { positional.push_back(r.arg()); continue; }
//     if (r.arg() == "--help") { ...; continue; }
//     const auto value = r.value();
//     if (!value) return fail(r.missing_value());  // "--timeout needs a value"
//   }
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace samples {

class FlagReader {
 public:
  // argv[0], the program, is skipped. argv must outlive the reader (the views point into it).
  FlagReader(int argc, const char* const* argv) : argc_(argc), argv_(argv) {}

  // Moves to the next argument; false once past the last.
  [[nodiscard]] bool next();

  // The current argument: "--name" when it was "--name=value", else the whole of it.
  [[nodiscard]] std::string_view arg() const { return arg_; }
  // Whether it is a flag: it starts with '-' and is not "-" alone.
  [[nodiscard]] bool is_flag() const { return arg_.size() > 1 && arg_.front() == '-'; }

  // The current flag's value: what followed '=', else the next argument (which is consumed, so
  // next() skips it). nullopt when the flag ends the command line.
  [[nodiscard]] std::optional<std::string_view> value();
  // The message for a missing value: "--name needs a value".
  [[nodiscard]] std::string missing_value() const;

 private:
  int argc_;
  const char* const* argv_;
  int i_ = 0;
  std::string_view arg_;
  std::optional<std::string_view> inline_value_;
};

// What a sample's main does once its flags are parsed: for --help, the usage on stdout and exit
// status 0; for an error, "<program>: <error>" and the usage on stderr and status 2; otherwise
// nullopt, and the program goes on.
//   if (auto rc = samples::help_or_error("prog", args.help, args.error, usage(argv[0]))) return *rc;
[[nodiscard]] std::optional<int> help_or_error(std::string_view program, bool help, std::string_view error,
                                               std::string_view usage);

}  // namespace samples
