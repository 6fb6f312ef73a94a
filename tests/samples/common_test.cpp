// samples/common: Go's duration notation (parse, format), the flag walker and the log stamp.
// The parse cases are Go's own (src/time/time_test.go, parseDurationTests and
// parseDurationErrorTests), so "Go-compatible" is checked rather than claimed.
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/duration.hpp"
#include "common/flags.hpp"
#include "common/log.hpp"

namespace {

using namespace std::chrono_literals;
using samples::Duration;
using samples::format_duration;
using samples::parse_duration;
using samples::parse_flag_duration;

constexpr Duration kMax = Duration::max();
constexpr Duration kMin = Duration::min();

TEST(SamplesDuration, ParsesWhatGoParses) {
  const struct {
    const char* in;
    Duration want;
  } cases[] = {
      {"0", 0s}, {"5s", 5s}, {"30s", 30s}, {"1478s", 1478s}, {"-5s", -5s}, {"+5s", 5s}, {"-0", 0s}, {"+0", 0s},
      {"5.0s", 5s}, {"5.6s", 5s + 600ms}, {"5.s", 5s}, {".5s", 500ms}, {"1.0s", 1s}, {"1.00s", 1s},
      {"1.004s", 1s + 4ms}, {"1.0040s", 1s + 4ms}, {"100.00100s", 100s + 1ms}, {"10ns", 10ns}, {"11us", 11us},
      {"12\u00b5s", 12us}, {"12\u03bcs", 12us}, {"13ms", 13ms}, {"14s", 14s}, {"15m", 15min}, {"16h", 16h},
      {"3h30m", 3h + 30min}, {"10.5s4m", 4min + 10s + 500ms}, {"-2m3.4s", -(2min + 3s + 400ms)},
      {"1h2m3s4ms5us6ns", 1h + 2min + 3s + 4ms + 5us + 6ns}, {"39h9m14.425s", 39h + 9min + 14s + 425ms},
      {"52763797000ns", 52763797000ns}, {"0.3333333333333333333h", 20min},
      {"9007199254740993ns", Duration((std::int64_t{1} << 53) + 1)}, {"9223372036854775807ns", kMax},
      {"9223372036854775.807us", kMax}, {"9223372036s854ms775us807ns", kMax}, {"-9223372036854775808ns", kMin},
      {"-9223372036854775.808us", kMin}, {"-9223372036s854ms775us808ns", kMin},
      {"-2562047h47m16.854775808s", kMin}, {"0.100000000000000000000h", 6min},
      {"0.830103483285477580700h", 49min + 48s + 372539827ns},
  };
  for (const auto& c : cases) {
    std::string err;
    const std::optional<Duration> d = parse_duration(c.in, &err);
    ASSERT_TRUE(d) << c.in << ": " << err;
    EXPECT_EQ(d->count(), c.want.count()) << c.in;
  }
}

TEST(SamplesDuration, RejectsWhatGoRejectsAndSaysWhy) {
  for (const char* bad : {"", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "\x85\x85", "\xff" "ff",
                          "hello \xff" "ff world", "9223372036854775808ns", "9223372036854775.808us",
                          "9223372036854ms775us808ns", "-9223372036854775809ns", "1e3ms", "1.5 s", "5s "}) {
    std::string err;
    EXPECT_FALSE(parse_duration(bad, &err)) << '"' << bad << '"';
    EXPECT_TRUE(err.starts_with("time: ")) << '"' << bad << "\": " << err;
  }
  std::string err;
  EXPECT_FALSE(parse_duration("1d", &err));
  EXPECT_EQ(err, "time: unknown unit \"d\" in duration \"1d\"");
  EXPECT_FALSE(parse_duration("3", &err));
  EXPECT_EQ(err, "time: missing unit in duration \"3\"");
  EXPECT_FALSE(parse_duration("1s.", &err));
  EXPECT_EQ(err, "time: invalid duration \"1s.\"");
  EXPECT_FALSE(parse_duration("bogus"));  // the message is optional
}

TEST(SamplesDuration, FlagsTakeBareSecondsAndRefuseNegatives) {
  EXPECT_EQ(parse_flag_duration("1.5"), std::optional<Duration>(1500ms));
  EXPECT_EQ(parse_flag_duration("10"), std::optional<Duration>(10s));
  EXPECT_EQ(parse_flag_duration("0"), std::optional<Duration>(0s));
  EXPECT_EQ(parse_flag_duration("-0s"), std::optional<Duration>(0s));
  EXPECT_EQ(parse_flag_duration("250ms"), std::optional<Duration>(250ms));
  EXPECT_EQ(parse_flag_duration("2m30s"), std::optional<Duration>(150s));
  EXPECT_EQ(parse_flag_duration("1h"), std::optional<Duration>(1h));
  std::string err;
  EXPECT_FALSE(parse_flag_duration("-1s", &err));
  EXPECT_EQ(err, "negative duration \"-1s\"");
  EXPECT_FALSE(parse_flag_duration("-1.5", &err));
  EXPECT_FALSE(parse_flag_duration("2m30", &err));  // a bare number only on its own
  EXPECT_EQ(err, "time: missing unit in duration \"2m30\"");
  EXPECT_FALSE(parse_flag_duration("fast", &err));
  EXPECT_EQ(err, "time: invalid duration \"fast\"");
  EXPECT_FALSE(parse_flag_duration("10 parsecs", &err));
  EXPECT_FALSE(parse_flag_duration("", &err));
}

TEST(SamplesDuration, FormatsShortForLogs) {
  const struct {
    Duration in;
    const char* want;
  } cases[] = {
      {0s, "0s"}, {1ns, "1ns"}, {999ns, "999ns"}, {1us, "1us"}, {45us, "45us"}, {1234ns, "1.23us"},
      {999us, "999us"}, {999600ns, "1ms"}, {1234us, "1.23ms"}, {250ms, "250ms"}, {999ms, "999ms"},
      {1s, "1s"}, {1500ms, "1.5s"}, {10s, "10s"}, {12345ms, "12.3s"}, {59960ms, "1m"}, {60s, "1m"},
      {90s, "1m30s"}, {2min, "2m"}, {61500ms, "1m1.5s"}, {1h, "1h"}, {1h + 30min, "1h30m"},
      {1h + 5s, "1h0m5s"}, {-1500ms, "-1.5s"}, {-2min, "-2m"}, {kMax, "2562047h47m16.855s"},
      {kMin, "-2562047h47m16.855s"},
  };
  for (const auto& c : cases) EXPECT_EQ(format_duration(c.in), c.want) << c.in.count() << "ns";
}

TEST(SamplesDuration, FormattedDurationsParseBack) {
  // Every output parses, and lands within the rounding: 0.5% below a minute, 0.5 ms above.
  for (std::int64_t n = 1; n < std::numeric_limits<std::int64_t>::max() / 7; n = n * 7 + 3) {
    for (const Duration d : {Duration(n), Duration(-n)}) {
      const std::string text = format_duration(d);
      std::string err;
      const std::optional<Duration> back = parse_duration(text, &err);
      ASSERT_TRUE(back) << text << ": " << err;
      const double diff = std::abs(static_cast<double>(back->count()) - static_cast<double>(d.count()));
      const double slack = std::chrono::abs(d) < 1min ? 0.005 * static_cast<double>(std::abs(d.count())) : 0.5e6;
      EXPECT_LE(diff, slack) << d.count() << "ns printed as " << text;
    }
  }
}

TEST(SamplesFlags, WalksNamesValuesAndBareArguments) {
  const char* argv[] = {"prog", "--a=1", "--b", "2", "url", "-", "-h", "--c=", "--d=x=y", "--e"};
  samples::FlagReader r(static_cast<int>(std::size(argv)), argv);
  std::vector<std::string> seen;
  while (r.next()) {
    if (!r.is_flag()) {
      seen.push_back("bare " + std::string(r.arg()));
      continue;
    }
    if (r.arg() == "-h") {
      seen.push_back("help");
      continue;
    }
    const std::optional<std::string_view> v = r.value();
    seen.push_back(std::string(r.arg()) + (v ? " = " + std::string(*v) : " missing: " + r.missing_value()));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"--a = 1", "--b = 2", "bare url", "bare -", "help", "--c = ",
                                            "--d = x=y", "--e missing: --e needs a value"}));
}

TEST(SamplesFlags, ValueIsReadOnce) {
  const char* argv[] = {"prog", "--a", "1", "--b"};
  samples::FlagReader r(4, argv);
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.value(), std::optional<std::string_view>("1"));
  EXPECT_EQ(r.value(), std::optional<std::string_view>("1"));  // not "--b"
  ASSERT_TRUE(r.next());
  EXPECT_EQ(r.arg(), "--b");
  EXPECT_FALSE(r.next());
}

TEST(SamplesFlags, HelpOrErrorPicksTheExitStatus) {
  EXPECT_EQ(samples::help_or_error("prog", false, "", "usage\n"), std::nullopt);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(samples::help_or_error("prog", true, "", "usage\n"), std::optional<int>(0));
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "usage\n");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(samples::help_or_error("prog", false, "--x needs a value", "usage\n"), std::optional<int>(2));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "prog: --x needs a value\nusage\n");
}

TEST(SamplesLog, StampsTheTimeOfDay) {
  EXPECT_TRUE(std::regex_match(samples::clock_now(), std::regex(R"(\d\d:\d\d:\d\d\.\d\d\d)")))
      << samples::clock_now();
}

}  // namespace
