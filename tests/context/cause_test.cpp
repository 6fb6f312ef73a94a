// Go's Err/Cause table (context_test.go TestCause), case for case: how a context became done
// decides its err() and cause().
#include <functional>
#include <string>
#include <vector>

#include <spindle/context.hpp>

#include "context/helpers.hpp"
#include "support/fiber_test.hpp"

using namespace std::chrono_literals;
using spindle::testing::canceled;
using spindle::testing::deadline_exceeded;
using spindle::testing::wait_done;

namespace spindle {
namespace {

const std::error_code kParentCause = make_error_code(std::errc::connection_reset);
const std::error_code kChildCause = make_error_code(std::errc::io_error);
const std::error_code kDeadlineCause = make_error_code(std::errc::host_unreachable);

struct Case {
  std::string name;
  // Builds the context, does whatever makes it done (or not), and returns it. `keep` holds the
  // cancel functions alive until the case is checked.
  std::function<Context(std::vector<CancelFunc>& keep)> run;
  std::error_code err;
  std::error_code cause;
};

Context keep(std::vector<CancelFunc>& k, CancelableContext&& c) {
  k.push_back(std::move(c.cancel));
  return c.ctx;
}

std::vector<Case> cases() {
  using K = std::vector<CancelFunc>;
  return {
      {"Background", [](K&) { return background(); }, {}, {}},
      {"TODO", [](K&) { return todo(); }, {}, {}},
      {"WithCancel", [](K& k) {
         Context c = keep(k, with_cancel(background()));
         k.back()();
         return c;
       }, canceled(), canceled()},
      {"WithCancelCause", [](K& k) {
         Context c = keep(k, with_cancel_cause(background()));
         k.back().cancel(kChildCause);
         return c;
       }, canceled(), kChildCause},
      {"WithCancelCause nil", [](K& k) {
         Context c = keep(k, with_cancel_cause(background()));
         k.back().cancel({});
         return c;
       }, canceled(), canceled()},
      {"WithCancelCause: parent cause before child", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = keep(k, with_cancel_cause(p));
         k[0].cancel(kParentCause);
         k[1].cancel(kChildCause);
         return c;
       }, canceled(), kParentCause},
      {"WithCancelCause: parent cause after child", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = keep(k, with_cancel_cause(p));
         k[1].cancel(kChildCause);
         k[0].cancel(kParentCause);
         return c;
       }, canceled(), kChildCause},
      {"WithCancelCause: parent cause before nil", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = keep(k, with_cancel(p));
         k[0].cancel(kParentCause);
         return c;
       }, canceled(), kParentCause},
      {"WithCancelCause: parent cause after nil", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = keep(k, with_cancel(p));
         k[1]();
         k[0].cancel(kParentCause);
         return c;
       }, canceled(), canceled()},
      {"WithCancelCause: child with nil cause", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = keep(k, with_cancel_cause(p));
         k[0].cancel({});
         return c;
       }, canceled(), canceled()},
      {"WithTimeout", [](K& k) {
         Context c = keep(k, with_timeout(background(), 0s));
         return c;
       }, deadline_exceeded(), deadline_exceeded()},
      {"WithTimeout fires", [](K& k) {
         Context c = keep(k, with_timeout(background(), 1ms));
         EXPECT_EQ(wait_done(c), deadline_exceeded());
         return c;
       }, deadline_exceeded(), deadline_exceeded()},
      {"WithTimeout canceled", [](K& k) {
         Context c = keep(k, with_timeout(background(), 1h));
         k.back()();
         return c;
       }, canceled(), canceled()},
      {"WithTimeoutCause", [](K& k) {
         Context c = keep(k, with_timeout_cause(background(), 0s, kDeadlineCause));
         return c;
       }, deadline_exceeded(), kDeadlineCause},
      {"WithTimeoutCause fires", [](K& k) {
         Context c = keep(k, with_timeout_cause(background(), 1ms, kDeadlineCause));
         EXPECT_EQ(wait_done(c), deadline_exceeded());
         return c;
       }, deadline_exceeded(), kDeadlineCause},
      {"WithTimeoutCause canceled", [](K& k) {
         Context c = keep(k, with_timeout_cause(background(), 1h, kDeadlineCause));
         k.back()();
         return c;
       }, canceled(), canceled()},
      {"WithTimeoutCause canceled with cause", [](K& k) {
         Context c = keep(k, with_timeout_cause(background(), 1h, kDeadlineCause));
         k.back().cancel(kChildCause);
         return c;
       }, canceled(), kChildCause},
      {"WithDeadlineCause", [](K& k) {
         Context c = keep(k, with_deadline_cause(background(), Clock::now() - 1s, kDeadlineCause));
         return c;
       }, deadline_exceeded(), kDeadlineCause},
      {"WithTimeout: parent cause before deadline", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = keep(k, with_timeout(p, 1h));
         k[0].cancel(kParentCause);
         return c;
       }, canceled(), kParentCause},
      {"WithTimeout: parent cause after deadline", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = keep(k, with_timeout(p, 1ms));
         EXPECT_EQ(wait_done(c), deadline_exceeded());
         k[0].cancel(kParentCause);
         return c;
       }, deadline_exceeded(), deadline_exceeded()},
      {"WithTimeout: parent deadline cause is inherited", [](K& k) {
         Context p = keep(k, with_timeout_cause(background(), 1ms, kDeadlineCause));
         Context c = keep(k, with_timeout(p, 1h));  // the parent's deadline is earlier
         EXPECT_EQ(wait_done(c), deadline_exceeded());
         return c;
       }, deadline_exceeded(), kDeadlineCause},
      {"WithTimeout: child cause", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = keep(k, with_timeout_cause(p, 1h, kDeadlineCause));
         k[1].cancel(kChildCause);
         k[0].cancel(kParentCause);
         return c;
       }, canceled(), kChildCause},
      {"WithValue canceled", [](K& k) {
         static constexpr ContextKey<int> kKey{"k"};
         Context p = keep(k, with_cancel_cause(background()));
         Context c = with_value(p, kKey, 1);
         k[0].cancel(kParentCause);
         return c;
       }, canceled(), kParentCause},
      {"WithoutCancel", [](K&) { return without_cancel(background()); }, {}, {}},
      {"WithoutCancel canceled", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = without_cancel(p);
         k[0].cancel(kParentCause);
         return c;
       }, {}, {}},
      {"WithoutCancel timeout", [](K& k) {
         Context p = keep(k, with_timeout_cause(background(), 0s, kDeadlineCause));
         return without_cancel(p);
       }, {}, {}},
      {"Cancel under WithoutCancel", [](K& k) {
         Context p = keep(k, with_cancel_cause(background()));
         Context c = keep(k, with_cancel_cause(without_cancel(p)));
         k[0].cancel(kParentCause);  // does not reach c
         k[1].cancel(kChildCause);
         return c;
       }, canceled(), kChildCause},
  };
}

FIBER_TEST(ContextCause, Table) {
  for (const Case& tc : cases()) {
    // (No SCOPED_TRACE: gtest keeps its trace stack per thread, and a fiber that parks may
    // resume on another worker thread.)
    std::vector<CancelFunc> k;
    const Context ctx = tc.run(k);
    EXPECT_EQ(ctx.err(), tc.err) << tc.name;
    EXPECT_EQ(cause(ctx), tc.cause) << tc.name;
    EXPECT_EQ(ctx.err(), tc.err) << tc.name << " (stable)";
    if (tc.err) {
      EXPECT_EQ(wait_done(ctx), tc.err) << tc.name;
    }
  }
}

}  // namespace
}  // namespace spindle
