// ClientLimiter: the gateway's front door, a token bucket per client on
// spindle::patterns::KeyedLimiter.
//
// A client is its X-API-Key header when it sends one ("key:<value>"), else its peer IP address
// ("ip:<address>", the port dropped: one host's connections share a bucket). Every bucket holds
// `burst` tokens, refills at `rate` per second, and starts full; a client idle for idle_ttl is
// forgotten (by default burst/rate, the time an empty bucket takes to refill: lossless, since a
// forgotten client comes back to the full bucket it would have had anyway). Forgetting happens
// inside the limiter's calls (amortised) and in evict_idle(), which the gateway calls from its
// sweeper and before rendering /metrics.
//
// Time comes from the injected patterns::Clock, so the tests are exact: burst N allowed, the
// N+1th refused, one more after 1/rate of (fake) time.
//
// Thread-safety: every member may be called concurrently (the KeyedLimiter's sharded locks).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <spindle/http/message.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/keyed_limiter.hpp>

namespace gateway {

class ClientLimiter {
 public:
  // rate > 0 and burst >= 1 (else patterns::ConfigError); idle_ttl 0: burst/rate.
  ClientLimiter(double rate, int burst, std::chrono::nanoseconds idle_ttl, const spindle::patterns::Clock& clock);

  // The bucket a request draws from.
  [[nodiscard]] static std::string client_key(const spindle::http::Request& req);

  struct Decision {
    bool allowed = false;
    std::chrono::nanoseconds retry_after{};  // refused: when the next token is due
  };
  // Takes one token from key's bucket now. Never blocks.
  [[nodiscard]] Decision allow(const std::string& key);

  // Forgets every client idle for idle_ttl; returns how many.
  std::size_t evict_idle() { return limiter_.evict_idle(); }
  [[nodiscard]] bool tracked(const std::string& key) { return limiter_.tracked(key); }
  [[nodiscard]] spindle::patterns::KeyedLimiterStats stats() const noexcept { return limiter_.stats(); }
  [[nodiscard]] std::chrono::nanoseconds idle_ttl() const noexcept { return limiter_.idle_ttl(); }

 private:
  double rate_;
  const spindle::patterns::Clock& clock_;
  spindle::patterns::KeyedLimiter<std::string> limiter_;
};

}  // namespace gateway
